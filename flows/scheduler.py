"""The one scheduler: a short-interval deployment (`sync-scheduler` in prefect.yaml) that submits each due
connection's work as a Prefect background task, which task workers (`python -m flows.task_worker`) run at once.

What is due comes from the store's sync policies (`inlet.store.claim_due`): a new connection's first full
import, then polls every `poll_seconds`, and a reconciliation every `reconcile_seconds`. The stamps are stored,
so a lost scheduler run loses nothing and adding a connection needs no prefect.yaml edit. A poll costs one task
run in a worker that is already up, not a process. Each connection's work runs one at a time (the flows hold
its single-flight slot). A revoked grant pauses the connection as `needs_reauth` until it is connected again.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from connectors.errors import NeedsReauth
from flows.full_import import ImportSummary, full_import
from flows.poll_changes import poll_changes
from flows.runtime import ImportJob
from inlet.service import maintain_subscriptions, run_tags
from inlet.settings import get_settings
from inlet.store import Due, Vault, claim_due, reconciled, set_state, shared_store

__all__ = ["SchedulerSummary", "drift_of", "sync_connection", "sync_scheduler"]


class SchedulerSummary(BaseModel):
    """What one scheduler tick submitted."""

    imports: int = 0
    polls: int = 0
    reconciliations: int = 0
    subscriptions_created: int = 0
    subscriptions_renewed: int = 0
    subscriptions_deleted: int = 0
    subscriptions_failed: int = 0
    resyncs: int = 0


@flow(name="sync-scheduler", persist_result=False, log_prints=False)
async def sync_scheduler() -> SchedulerSummary:
    """Submit every due connection's import, poll or reconciliation to the task workers, after keeping each
    connection's webhook subscription in step (created, renewed, deleted; a `missed` one resyncs by a poll).
    No parameters: each connection's sync policy says what is due."""
    settings = get_settings()
    engine = shared_store(settings.store_url)
    summary = SchedulerSummary()
    resyncs = await _subscriptions(settings, engine, summary)
    for due in [*await anyio.to_thread.run_sync(claim_due, engine), *resyncs]:
        with tags(*run_tags(due.tenant, due.connection)):
            sync_connection.delay(due.tenant, due.connection, due.data_source, due.work)
        if due.work == "import":
            summary.imports += 1
        elif due.work == "poll":
            summary.polls += 1
        else:
            summary.reconciliations += 1
    get_run_logger().info("submitted %s", summary.model_dump())
    return summary


async def _subscriptions(settings: Any, engine: Any, summary: SchedulerSummary) -> list[Due]:
    """The subscriptions' tick; a failure of its own is logged and never keeps the polls from being submitted."""
    try:
        tick = await maintain_subscriptions(engine, Vault.from_settings(settings), settings)
    except Exception as exc:  # the store or the vault: the polls below still run, the next tick tries again
        get_run_logger().error("webhook subscriptions were not maintained: %s", type(exc).__name__)
        return []
    summary.subscriptions_created, summary.subscriptions_renewed = tick.created, tick.renewed
    summary.subscriptions_deleted, summary.subscriptions_failed = tick.deleted, tick.failed
    summary.resyncs = len(tick.resyncs)
    return tick.resyncs


@task(
    name="sync-connection",
    task_run_name="{work}/{tenant}/{connection}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def sync_connection(
    tenant: str, connection: str, data_source: str, work: Literal["import", "poll", "reconcile"]
) -> None:
    """One connection's due work, in this task worker: its full import, a poll, or a reconciliation."""
    engine = shared_store(get_settings().store_url)
    job = ImportJob(tenant=tenant, connection=connection, data_source=data_source)
    try:
        if work == "import":
            await full_import(job)
            return
        await _poll_and_apply(tenant, connection, data_source)  # a reconciliation too: the change source first
        if work == "reconcile":
            drift = drift_of(await full_import(job))
            await anyio.to_thread.run_sync(reconciled, engine, connection, drift)
    except NeedsReauth as exc:
        await anyio.to_thread.run_sync(set_state, engine, tenant, connection, "needs_reauth", str(exc)[:300])
        get_run_logger().warning("%s paused until it is connected again: %s", connection, exc)


async def _poll_and_apply(tenant: str, connection: str, data_source: str) -> None:
    """Poll, then apply the connection's whole inbox in this task run: what the poll heard and the webhook events
    waiting there (whose own notice may have been lost), with no second run to start."""
    await poll_changes(tenant, connection, data_source, apply=True)


def drift_of(summary: ImportSummary) -> dict[str, int]:
    """What a reconciliation found that the change source had missed, by kind."""
    return {"missed_creates": summary.created, "missed_updates": summary.updated, "missed_deletes": summary.deleted}
