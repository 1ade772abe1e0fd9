"""Tags on every run (tenant, connection, app, data source), so the Prefect UI filters runs by them and
`inlet status` finds a connection's runs.

A run that a deployment, a schedule or a trigger created carries only the deployment's tags; the flow adds
the connection's own when it starts. Background `apply-inbox` runs get them when they are submitted.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

__all__ = ["connection_tag", "label_run", "run_tags"]


def connection_tag(connection: str) -> str:
    return f"connection:{connection}"


def run_tags(tenant: str, connection: str, app: str | None = None, data_source: str | None = None) -> list[str]:
    tags = [f"tenant:{tenant}", connection_tag(connection)]
    tags += [f"app:{app}"] if app else []
    tags += [f"data-source:{data_source}"] if data_source else []
    return tags


async def label_run(tenant: str, connection: str, app: str, data_source: str) -> None:
    """Add the connection's tags to the flow run this code runs in (nothing outside a flow run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    current = list(context.flow_run.tags)
    missing = [tag for tag in run_tags(tenant, connection, app, data_source) if tag not in current]
    if missing:
        async with get_client() as client:
            await client.update_flow_run(context.flow_run.id, tags=[*current, *missing])
        context.flow_run.tags = [*current, *missing]
