"""The one scheduler: a deployment (`sync-scheduler` in prefect.yaml) whose run ticks every `tick_seconds` for
`run_seconds`, and at each tick submits the due connections' work as Prefect background tasks, which task
workers (`python -m flows.task_worker`) run at once.

What is due comes from the store's sync policies (`inlet.store.claim_due`): a new connection's first full
import, then polls every `poll_seconds`, and a reconciliation every `reconcile_seconds`. The stamps are stored,
so a lost scheduler run loses nothing and adding a connection needs no prefect.yaml edit. An import or a
reconciliation is a `sync-connection` task run of its own; the polls due at one tick are `sync-polls` task runs of
up to `POLL_BATCH` connections of one app each, since a poll that hears nothing is one request and two store
writes, much less than a task run costs the worker and the Prefect server. A poll that hears changes (or finds
webhook events waiting) applies them in an `apply-inbox` task run of its own, tagged with the connection, inside
the batch's run. A revoked grant pauses the connection as `needs_reauth` until it is connected again.
"""

from __future__ import annotations

import asyncio
import math
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
from flows.poll_changes import poll
from flows.runtime import ImportJob, open_runtime
from flows.task_cache import NEVER_CACHED
from inlet.service import maintain_subscriptions, run_tags
from inlet.settings import get_settings
from inlet.store import Due, Store, Vault, claim_due, inbox, poll_failed, reconciled, set_state, shared_store

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
POLLS_AT_ONCE = 8  # of a batch, in flight together
POLL_TIME_LIMIT_FLOOR = 60.0  # seconds: the shortest default time limit of a poll in a batch


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


class PollBatch(BaseModel):
    """What one sync-polls run found, connection by connection."""

    polled: int = 0
    changed: list[str] = Field(default_factory=list)
    needs_reauth: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


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
        await _pause(engine, job, exc)


@task(
    name="sync-polls",
    task_run_name="polls/{app}/{label}",
    cache_policy=NEVER_CACHED,  # not NO_CACHE: a task worker would serve it with DEFAULT (flows/task_cache.py)
)
async def sync_polls(
    app: str, label: str, connections: list[tuple[str, str, str]], time_limit: float | None = None
) -> PollBatch:
    """Poll several connections of one app, a few at once; each that heard changes applies them in an
    apply-inbox run of its own. One connection's failure is reported, and never stops the others' polls.

    Each poll (with the apply of what it heard) has `time_limit` seconds (default: `poll_time_limit`): one that
    runs past it is cancelled and reported as failed (a cut apply leaves its batch in the inbox), so a stuck
    connection never holds the batch, nor the task worker's slot, for longer than that. The whole batch ends after
    as many limits as it has rounds of POLLS_AT_ONCE, plus one, leaving behind (cancelled) any poll still running."""
    engine = shared_store(get_settings().store_url)
    limit = time_limit if time_limit and time_limit > 0 else poll_time_limit()
    gate = asyncio.Semaphore(POLLS_AT_ONCE)
    batch = PollBatch()

    async def one(tenant: str, connection: str, data_source: str) -> None:
        job = ImportJob(tenant=tenant, connection=connection, data_source=data_source)
        async with gate:
            bound = asyncio.timeout(limit)
            try:
                async with bound:
                    changed = await _poll_and_apply(engine, job, wait_seconds=0)
                batch.changed += [connection] if changed else []
                batch.polled += 1
            except NeedsReauth as exc:
                batch.needs_reauth.append(connection)
                await _pause(engine, job, exc)
            except Exception as exc:  # reported below; the connection's next poll tries again
                late = f"PollTimedOut: still running after {limit:g} s, cancelled (INLET_POLL_TIME_LIMIT_SECONDS)"
                await _failed(engine, batch, connection, late if bound.expired() else f"{type(exc).__name__}: {exc}")

    batch_limit = limit * (math.ceil(len(connections) / POLLS_AT_ONCE) + 1)
    polls = {asyncio.ensure_future(one(*target)): target[1] for target in connections}
    try:
        _, late = await asyncio.wait(polls, timeout=batch_limit) if polls else (set(), set())
    finally:
        for running in polls:  # not waited for: a poll that ignores its cancellation must not hold the batch
            running.cancel()
    for running in late:
        await _failed(engine, batch, polls[running], f"BatchTimedOut: the batch ran past {batch_limit:g} s")
    for running in polls.keys() - late:  # one catches every Exception: what is left (SystemExit ...) goes on up
        if not running.cancelled() and (error := running.exception()) is not None:
            raise error
    report = batch.model_copy(deep=True)  # what a poll left behind does later is not this run's
    if report.failed:
        raise PollsFailed(report)
    if report.changed or report.needs_reauth:
        get_run_logger().info("polls of %s: %s", app, report.model_dump(exclude_defaults=True))
    return report


class PollsFailed(Exception):
    """Some polls of a batch failed (the others went through); each connection's next poll tries again."""

    def __init__(self, batch: PollBatch) -> None:
        failures = "; ".join(f"{connection}: {reason}" for connection, reason in batch.failed.items())
        super().__init__(f"{len(batch.failed)} of {len(batch.failed) + batch.polled} polls failed: {failures}")
        self.batch = batch


async def _poll_and_apply(engine: Store, job: ImportJob, wait_seconds: float = 900) -> bool:
    """Poll, then apply the connection's whole inbox in an apply-inbox run: what the poll heard and the webhook
    events waiting there (whose own notice may have been lost). Whether there was anything to apply.

    `wait_seconds` for the connection's slot: a batch (0) never waits behind a run holding it (an import)."""
    run = open_runtime(job, get_settings(), engine=engine)
    try:
        summary = await poll(run, str(task_run.id or ""))
    finally:
        await run.aclose()
    data_source = run.data_source
    waiting = summary.added_to_inbox or await anyio.to_thread.run_sync(inbox.depth, engine, job.connection)
    if not waiting:
        return False
    if summary.added_to_inbox:
        emit_changed(job.tenant, job.connection, source="poll", submit=False, runner="task-worker")
    with tags(*run_tags(job.tenant, job.connection)):
        await apply_inbox(job.tenant, job.connection, data_source, wait_seconds=wait_seconds)
    return True


async def _failed(engine: Store, batch: PollBatch, connection: str, reason: str) -> None:
    """Report a connection's failed poll in the batch's result and in its sync policy (`inlet status`)."""
    batch.failed[connection] = reason[:300]
    try:
        await anyio.to_thread.run_sync(poll_failed, engine, connection, reason)
    except Exception as exc:  # the store itself: the batch still reports it, and the other polls go on
        get_run_logger().error("%s: its poll's failure was not stored: %s", connection, type(exc).__name__)


def poll_time_limit(poll_seconds: float = 300) -> float:
    """How long one poll of a batch may take: INLET_POLL_TIME_LIMIT_SECONDS, else the connection's poll interval,
    at least POLL_TIME_LIMIT_FLOOR (a poll still running when its next one is due is stuck)."""
    return get_settings().poll_time_limit_seconds or max(float(poll_seconds), POLL_TIME_LIMIT_FLOOR)


async def _pause(engine: Store, job: ImportJob, exc: NeedsReauth) -> None:
    await anyio.to_thread.run_sync(set_state, engine, job.tenant, job.connection, "needs_reauth", str(exc)[:300])
    get_run_logger().warning("%s paused until it is connected again: %s", job.connection, exc)


def drift_of(summary: ImportSummary) -> dict[str, int]:
    """What a reconciliation found that the change source had missed, by kind."""
    return {"missed_creates": summary.created, "missed_updates": summary.updated, "missed_deletes": summary.deleted}
