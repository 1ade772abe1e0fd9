"""Figures per connection for `inlet status`: the store's (change source in use: webhook with its subscription's
expiry, or poll; imports, inbox, outbox, quarantine) and Prefect's
(the last incremental run and the last error, found by the runs' `connection:<id>` tag)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from inlet.local import apply_prefect_env
from inlet.service.installation import Installation
from inlet.service.sync import change_source
from inlet.service.tenants import require_tenant
from inlet.store import (
    Checkpoint,
    Connection,
    InboxEvent,
    LedgerEntry,
    OAuthToken,
    QuarantinedRecord,
    SyncPolicy,
    SyncState,
    WebhookSubscription,
    outbox,
)
from inlet.tags import connection_tag

__all__ = ["StatusReport", "connection_status", "run_history", "status_report"]

_INCREMENTAL_RUNS = ("incremental-import", "apply-inbox")
_FAILED = ("FAILED", "CRASHED")


@dataclass(frozen=True)
class StatusReport:
    """Per connection figures; `history` says whether Prefect's run history is in them (a server answered)."""

    connections: list[dict[str, Any]]
    history: bool


def status_report(inst: Installation, tenant: str | None = None) -> StatusReport:
    """Every connection's figures (of one tenant, or all), with Prefect's run history when a server answers."""
    if tenant is not None:
        require_tenant(inst, tenant)
    apply_prefect_env(inst.settings)
    history = None
    if "PREFECT_API_URL" in os.environ:
        history = run_history([row["connection"] for row in connection_status(inst.engine, tenant=tenant)])
    return StatusReport(connection_status(inst.engine, history, tenant), history is not None)


def connection_status(
    engine: Engine, history: dict[str, dict[str, str]] | None = None, tenant: str | None = None
) -> list[dict[str, Any]]:
    """One row per connection (of one tenant, or all); `history` (from `run_history`) adds what Prefect knows."""
    now = datetime.now(UTC)
    rows = []
    query = select(Connection).order_by(col(Connection.tenant_id), col(Connection.id))
    if tenant is not None:
        query = query.where(col(Connection.tenant_id) == tenant)
    with Session(engine) as session:
        for c in session.exec(query):
            checkpoint = session.get(Checkpoint, (c.id, c.data_source))
            sync = session.get(SyncState, (c.id, c.data_source))
            live = session.exec(
                select(func.count()).where(LedgerEntry.connection_id == c.id, col(LedgerEntry.deleted_at).is_(None))
            ).one()
            inbox_depth, oldest = session.exec(
                select(func.count(), func.min(InboxEvent.received_at)).where(InboxEvent.connection_id == c.id)
            ).one()
            quarantined = session.exec(select(func.count()).where(QuarantinedRecord.connection_id == c.id)).one()
            box = outbox.counts(engine, c.id)
            token = session.get(OAuthToken, c.id)
            policy = session.get(SyncPolicy, c.id)
            source = change_source(c, policy, session.get(WebhookSubscription, c.id)) if policy else "not scheduled yet"
            row: dict[str, Any] = {
                "tenant": c.tenant_id,
                "connection": c.id,
                "app": c.app,
                "change_source": source,
                "last_full_import": _when(checkpoint.updated_at) if checkpoint else "never",
                "import_state": _import_state(checkpoint),
                "last_poll": _when(sync.last_poll_at) if sync and sync.last_poll_at else "never",
                "records": live,
                "inbox": inbox_depth,
                "lag_seconds": round((now - _aware(oldest)).total_seconds(), 1) if oldest else 0,
                "outbox_pending": box.pending,
                "outbox_deferred": box.deferred,
                "dead_letters": box.dead,
                "quarantined": quarantined,
                "auth": f"oauth:{token.status}" if token else "credentials",  # oauth:needs_reauth: reconnect
            }
            if history is not None:
                row |= history.get(c.id, {"last_incremental": "never", "last_error": "-"})
            rows.append(row)
    return rows


def run_history(connections: list[str]) -> dict[str, dict[str, str]]:
    """Per connection: the last incremental run (flow run or task-worker run) and the last failed run's message."""
    return asyncio.run(_run_history(connections))


async def _run_history(connections: list[str]) -> dict[str, dict[str, str]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:

        async def one(connection: str) -> tuple[str, dict[str, str]]:
            runs = await _tagged_runs(client, connection_tag(connection))
            incremental = [r for r in runs if r["name"].startswith(_INCREMENTAL_RUNS) and r["end"]]
            failed = [r for r in runs if r["state"] in _FAILED]
            last = max(incremental, key=lambda r: r["end"], default=None)
            error = max(failed, key=lambda r: r["end"] or r["start"], default=None)
            return connection, {
                "last_incremental": f"{last['end']} {last['state'].lower()}" if last else "never",
                "last_error": f"{error['end'] or error['start']} {error['name']}: {error['message']}" if error else "-",
            }

        return dict(await asyncio.gather(*(one(c) for c in connections)))


async def _tagged_runs(client: Any, tag: str) -> list[dict[str, str]]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags, TaskRunFilter, TaskRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

    flow_runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])), sort=FlowRunSort.START_TIME_DESC, limit=20
    )
    tasks = await client.read_task_runs(
        task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])), sort=TaskRunSort.EXPECTED_START_TIME_DESC
    )
    return [
        {
            "name": run.name,
            "state": run.state_type.value if run.state_type else "",
            "message": (run.state.message or "")[:200] if run.state else "",
            "start": _when(run.start_time) if run.start_time else "",
            "end": _when(run.end_time) if run.end_time else "",
        }
        for run in [*flow_runs, *tasks[:20]]
    ]


def _import_state(checkpoint: Checkpoint | None) -> str:
    if checkpoint is None:
        return "-"
    return "complete" if checkpoint.complete else f"at page {checkpoint.pages}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).isoformat(timespec="seconds")
