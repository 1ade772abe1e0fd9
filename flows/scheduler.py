"""The one scheduler: a deployment (`sync-scheduler` in prefect.yaml) whose run ticks every `tick_seconds` for
`run_seconds`, and at each tick submits the due connections' work as Prefect background tasks, which task
workers (`python -m flows.task_worker`) run at once.

What is due comes from the store's sync policies (`inlet.store.claim_due`): a new connection's first full
import, then polls every `poll_seconds`, and a reconciliation every `reconcile_seconds`. The stamps are stored,
so a lost scheduler run loses nothing and adding a connection needs no prefect.yaml edit. An import or a
reconciliation is a `sync-connection` task run of its own; the polls due at one tick are `sync-polls` task runs of
up to `POLL_BATCH` connections of one app each (`flows.poll_batch`), which apply what they hear in their own run.
A sync-connection run's poll applies what it heard in an `apply-inbox` task run, tagged with the connection,
inside its run. A revoked grant pauses the connection as `needs_reauth` until it is connected again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import anyio
from prefect import flow, get_run_logger, tags, task
from prefect.runtime import task_run
from pydantic import BaseModel, Field

from connectors.errors import NeedsReauth
from flows.events import emit_changed
from flows.full_import import ImportSummary, full_import
from flows.incremental_import import apply_inbox
from flows.poll_batch import PollsFailed, pause_for_reauth, poll_time_limit, sync_polls
from flows.poll_changes import poll
from flows.runtime import ImportJob, open_runtime
from flows.task_cache import NEVER_CACHED
from inlet.service import maintain_subscriptions, run_tags
from inlet.settings import get_settings
from inlet.store import Due, Store, Vault, claim_due, inbox, reconciled, shared_store

__all__ = [
    "POLL_BATCH",
    "PollsFailed",
    "SchedulerSummary",
    "drift_of",
    "poll_time_limit",
    "sync_connection",
    "sync_polls",
    "sync_scheduler",
]

RUN_SECONDS = 65  # prefect.yaml starts a run every 60 s: the next one starts before this one stops ticking
POLL_BATCH = 25  # connections per sync-polls task run


class SchedulerSummary(BaseModel):
    """What the scheduler's ticks submitted."""

    ticks: int = 0
    imports: int = 0
    polls: int = 0
    poll_batches: int = 0
    reconciliations: int = 0
    subscriptions_created: int = 0
    subscriptions_renewed: int = 0
    subscriptions_deleted: int = 0
    subscriptions_failed: int = 0
    resyncs: int = 0

    def add(self, other: SchedulerSummary) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@flow(name="sync-scheduler", persist_result=False, log_prints=False)
async def sync_scheduler(
    run_seconds: Annotated[
        float, Field(ge=0, description="keep ticking this long (0: one tick); a little over the schedule's interval")
    ] = RUN_SECONDS,
    tick_seconds: Annotated[float, Field(gt=0, description="seconds between two ticks")] = 10,
) -> SchedulerSummary:
    """Submit every due connection's import, polls or reconciliation to the task workers, tick after tick, after
    keeping each connection's webhook subscription in step (created, renewed, deleted; a `missed` one resyncs by
    a poll). Each connection's sync policy says what is due. One run ticks for `run_seconds`: a run costs a
    process, a tick only a few store queries.

    Args:
        run_seconds: keep ticking this long (0: one tick); a little over the schedule's interval.
        tick_seconds: seconds between two ticks.
    """
    start = time.monotonic()
    total = SchedulerSummary()
    while True:
        total.add(await _tick())
        elapsed = time.monotonic() - start
        if elapsed >= run_seconds:
            return total
        await asyncio.sleep(min(tick_seconds - elapsed % tick_seconds, run_seconds - elapsed))  # on the tick


async def _tick() -> SchedulerSummary:
    settings = get_settings()
    engine = shared_store(settings.store_url)
    summary = SchedulerSummary(ticks=1)
    resyncs = await _subscriptions(settings, engine, summary)
    claimed = await anyio.to_thread.run_sync(claim_due, engine)
    polls = [due for due in claimed if due.work == "poll"]
    for due in [*(due for due in claimed if due.work != "poll"), *resyncs]:
        with tags(*run_tags(due.tenant, due.connection)):
            sync_connection.delay(due.tenant, due.connection, due.data_source, due.work)
        if due.work == "import":
            summary.imports += 1
        elif due.work == "poll":
            summary.polls += 1
        else:
            summary.reconciliations += 1
    for app, batch in _batches(polls):
        with tags("inlet", f"app:{app}"):
            targets = [(d.tenant, d.connection, d.data_source) for d in batch]
            sync_polls.delay(app, _label(batch), targets, min(poll_time_limit(d.poll_seconds) for d in batch))
        summary.polls += len(batch)
        summary.poll_batches += 1
    if claimed or resyncs:
        get_run_logger().info("submitted %s", summary.model_dump(exclude_defaults=True))
    return summary


def _batches(polls: Iterable[Due]) -> list[tuple[str, list[Due]]]:
    """The polls by app, in runs of at most POLL_BATCH connections."""
    by_app: dict[str, list[Due]] = {}
    for due in polls:
        by_app.setdefault(due.app or "any", []).append(due)
    return [(app, dues[i : i + POLL_BATCH]) for app, dues in by_app.items() for i in range(0, len(dues), POLL_BATCH)]


def _label(batch: list[Due]) -> str:
    first = batch[0].connection
    return first if len(batch) == 1 else f"{first}+{len(batch) - 1}"


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
    cache_policy=NEVER_CACHED,  # not NO_CACHE: a task worker would serve it with DEFAULT (flows/task_cache.py)
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
        await _poll_and_apply(engine, job)  # a reconciliation too: the change source first
        if work == "reconcile":
            drift = drift_of(await full_import(job))
            await anyio.to_thread.run_sync(reconciled, engine, connection, drift)
    except NeedsReauth as exc:
        await pause_for_reauth(engine, job, exc)


async def _poll_and_apply(engine: Store, job: ImportJob) -> None:
    """Poll, then apply the connection's whole inbox in an apply-inbox run: what the poll heard and the webhook
    events waiting there (whose own notice may have been lost), waiting for the connection's slot."""
    run = open_runtime(job, get_settings(), engine=engine)
    try:
        summary = await poll(run, str(task_run.id or ""))
    finally:
        await run.aclose()
    data_source = run.data_source
    waiting = summary.added_to_inbox or await anyio.to_thread.run_sync(inbox.depth, engine, job.connection)
    if not waiting:
        return
    if summary.added_to_inbox:
        emit_changed(job.tenant, job.connection, source="poll", submit=False, runner="task-worker")
    with tags(*run_tags(job.tenant, job.connection)):
        await apply_inbox(job.tenant, job.connection, data_source)


def drift_of(summary: ImportSummary) -> dict[str, int]:
    """What a reconciliation found that the change source had missed, by kind."""
    return {"missed_creates": summary.created, "missed_updates": summary.updated, "missed_deletes": summary.deleted}
