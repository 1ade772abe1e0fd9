"""Write what the team's app pushed to its tenants' apps: one connection (`inlet push run`), or, run by its
schedule without parameters, every connection with a push due, so deferred pushes are retried by Prefect.

Each connection's drain is a `write-to-app` task; the run publishes a summary per connection (written,
created, updated, deleted, failed, deferred, conflicts, echoes suppressed, dropped-field notices). A run for
one connection fails, keeping its pushes, while the external app refuses to take them (breaker open), and
fails loudly when a push became a dead letter, so the operator sees it in the UI and in `inlet status`.
"""

from __future__ import annotations

import asyncio

import anyio
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from flows.artifacts import publish_summary
from flows.run_tags import label_run
from inlet.errors import DeliveryError
from inlet.push import PushResult, drain_pushes, open_push_runtime
from inlet.settings import get_settings
from inlet.store import push_connections, push_stats, shared_store

__all__ = ["PushSummary", "push_outbox"]


class PushSummary(BaseModel):
    """The figures of one push run (all connections it drained)."""

    connections: list[str] = Field(default_factory=list)
    written: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    deferred: int = 0
    parked: bool = False
    conflicts: list[dict[str, str]] = Field(default_factory=list)
    echo_suppressed: int = Field(0, description="the connections' echoes suppressed so far (import side)")
    notices: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)

    def add(self, connection: str, result: PushResult) -> None:
        self.connections.append(connection)
        for name in ("written", "created", "updated", "deleted", "unchanged", "failed", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(result, name))
        self.parked = self.parked or result.parked
        self.conflicts += result.conflicts
        self.notices += result.notices[:50]
        self.errors += result.errors[:50]


@task(
    name="write-to-app", task_run_name="write-to-app/{tenant}/{connection}", cache_policy=NO_CACHE, persist_result=False
)
async def _write(tenant: str, connection: str) -> PushResult:
    settings = get_settings()
    engine = shared_store(settings.store_url)
    run = await anyio.to_thread.run_sync(lambda: open_push_runtime(settings, tenant, connection, engine=engine))
    await label_run(tenant, connection, run.app, run.data_source)
    try:
        return await drain_pushes(run)
    finally:
        await run.aclose()


def _run_name() -> str:
    tenant, connection = flow_run.parameters.get("tenant"), flow_run.parameters.get("connection")
    return f"push-outbox/{tenant}/{connection}" if tenant and connection else "push-outbox/all"


@flow(name="push-outbox", flow_run_name=_run_name, persist_result=False)
async def push_outbox(tenant: str | None = None, connection: str | None = None) -> PushSummary:
    """Write one connection's pending pushes, or, without parameters, every connection's due pushes.

    Args:
        tenant: the tenant id (with `connection`: only that connection's pushes).
        connection: the connection whose pending pushes to write; none: every connection with pushes due.
    """
    settings = get_settings()
    engine = shared_store(settings.store_url)
    one = tenant is not None and connection is not None
    targets = [(tenant, connection)] if one else await anyio.to_thread.run_sync(push_connections, engine, tenant)
    results = await asyncio.gather(*(_write(t, c) for t, c in targets if t and c))
    summary = PushSummary()
    for (_, c), result in zip(targets, results, strict=True):
        summary.add(str(c), result)
    stats = await anyio.to_thread.run_sync(push_stats, engine)
    summary.echo_suppressed = sum(s.echo_suppressed for s in stats if s.connection_id in summary.connections)
    await publish_summary("push-outbox", *(p for p in (tenant, connection) if p), summary=_table(summary))
    logger = get_run_logger()
    logger.info(
        "pushed to %d connections: %d written, %d failed, %d deferred, %d conflicts, %d echoes suppressed",
        len(results),
        summary.written,
        summary.failed,
        summary.deferred,
        len(summary.conflicts),
        summary.echo_suppressed,
    )
    for notice in summary.notices[:20]:
        logger.warning("%s", notice)
    if one and summary.failed:
        raise DeliveryError(f"{summary.failed} pushes became dead letters: {summary.errors[0]}")
    if one and summary.parked:
        raise DeliveryError(f"the external app does not take writes now; pushes wait: {summary.errors[-1:]}")
    return summary


def _table(summary: PushSummary) -> dict[str, object]:
    figures: dict[str, object] = summary.model_dump(exclude={"conflicts", "notices", "errors", "connections"})
    figures["conflicts"] = len(summary.conflicts)
    for index, conflict in enumerate(summary.conflicts[:20]):
        figures[f"conflict {index + 1}"] = (
            f"{conflict['app_id']} <-> {conflict['external_id']}: {conflict['field']} -> {conflict['winner']} "
            f"({conflict['rule']})"
        )
    figures["dropped-field notices"] = len(summary.notices)
    return figures
