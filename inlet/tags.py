"""The tags every run carries (tenant, connection, app, data source), so the Prefect UI filters runs by them
and `inlet status` finds a connection's runs: plain names, which the Prefect side (`label_run`) puts on runs."""

from __future__ import annotations

__all__ = ["connection_tag", "run_tags"]


def connection_tag(connection: str) -> str:
    return f"connection:{connection}"


def run_tags(tenant: str, connection: str, app: str | None = None, data_source: str | None = None) -> list[str]:
    tags = [f"tenant:{tenant}", connection_tag(connection)]
    tags += [f"app:{app}"] if app else []
    tags += [f"data-source:{data_source}"] if data_source else []
    return tags
