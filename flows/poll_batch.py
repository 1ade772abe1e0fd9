"""The scheduler's batched polls: a `sync-polls` task run polls several connections of one app, a few at once,
and applies what each heard in its own run (`flows.batch_apply`), since a poll that hears nothing is one request
and two store writes, and an apply a few more: much less than a task run costs the task worker and the Prefect
server. A revoked grant pauses the connection as `needs_reauth` until it is connected again.
"""

from __future__ import annotations

import asyncio
import math

import anyio
from prefect import get_run_logger, task
from prefect.runtime import task_run
from pydantic import BaseModel, Field

from connectors.errors import NeedsReauth
from flows.batch_apply import BatchApplies, apply_polled
from flows.events import emit_changed
from flows.incremental_import import fail_on_delivery
from flows.poll_changes import poll
from flows.runtime import ImportJob, open_runtime
from flows.task_cache import NEVER_CACHED
from inlet.settings import get_settings
from inlet.store import Store, inbox, poll_failed, set_state, shared_store

__all__ = ["POLLS_AT_ONCE", "PollBatch", "PollsFailed", "pause_for_reauth", "poll_time_limit", "sync_polls"]

POLLS_AT_ONCE = 8  # of a batch, in flight together
POLL_TIME_LIMIT_FLOOR = 60.0  # seconds: the shortest default time limit of a poll in a batch


class PollBatch(BaseModel):
    """What one sync-polls run found, connection by connection."""

    polled: int = 0
    changed: list[str] = Field(default_factory=list)
    applied: dict[str, int] = Field(default_factory=dict, description="connection: inbox events applied")
    held: list[str] = Field(default_factory=list, description="left to another run holding the connection")
    needs_reauth: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


@task(
    name="sync-polls",
    task_run_name="polls/{app}/{label}",
    cache_policy=NEVER_CACHED,  # not NO_CACHE: a task worker would serve it with DEFAULT (flows/task_cache.py)
)
async def sync_polls(
    app: str, label: str, connections: list[tuple[str, str, str]], time_limit: float | None = None
) -> PollBatch:
    """Poll several connections of one app, a few at once, and apply what each heard (with the webhook events
    waiting in its inbox) in this run. One connection's failure is reported, and never stops the others' polls.

    Each poll (with the apply of what it heard) has `time_limit` seconds (default: `poll_time_limit`): one that
    runs past it is cancelled and reported as failed (a cut apply leaves its batch in the inbox), so a stuck
    connection never holds the batch, nor the task worker's slot, for longer than that. The whole batch ends after
    as many limits as it has rounds of POLLS_AT_ONCE, plus one, leaving behind (cancelled) any poll still running."""
    engine = shared_store(get_settings().store_url)
    limit = time_limit if time_limit and time_limit > 0 else poll_time_limit()
    gate = asyncio.Semaphore(POLLS_AT_ONCE)
    batch, applies = PollBatch(), BatchApplies()

    async def one(tenant: str, connection: str, data_source: str) -> None:
        job = ImportJob(tenant=tenant, connection=connection, data_source=data_source)
        async with gate:
            bound = asyncio.timeout(limit)
            try:
                async with bound:
                    await _poll_and_apply(engine, job, batch, applies)
                batch.polled += 1
            except NeedsReauth as exc:
                batch.needs_reauth.append(connection)
                await pause_for_reauth(engine, job, exc)
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
    return await _report(app, label, engine, batch.model_copy(deep=True), applies)


async def _poll_and_apply(engine: Store, job: ImportJob, batch: PollBatch, applies: BatchApplies) -> None:
    """Poll, then apply the connection's whole inbox in this run: what the poll heard and the webhook events
    waiting there (whose own notice may have been lost). A connection another run holds is left to it."""
    run = open_runtime(job, get_settings(), engine=engine)
    try:
        run_id = str(task_run.id or "")
        summary = await poll(run, run_id)
        waiting = summary.added_to_inbox or await anyio.to_thread.run_sync(inbox.depth, engine, job.connection)
        if not waiting:
            return
        batch.changed.append(job.connection)
        if summary.added_to_inbox:  # the event feed's record; the trigger ignores a task worker's events
            emit_changed(job.tenant, job.connection, source="poll", submit=False, runner="task-worker")
        applied = await apply_polled(run, run_id)
    finally:
        await run.aclose()
    if applied is None:
        batch.held.append(job.connection)
        return
    applies.applied[job.connection] = applied
    batch.applied[job.connection] = applied.summary.inbox_events
    fail_on_delivery(applied.summary)


async def _report(app: str, label: str, engine: Store, report: PollBatch, applies: BatchApplies) -> PollBatch:
    """The batch's artifact and log line, then its result; PollsFailed when a poll failed. What a poll left behind
    does later is not this run's: `report` is a copy taken when the batch ended."""
    await applies.publish(app, label, report.held, engine, get_settings())
    if report.failed:  # the run's failure names them; its result is this report
        raise PollsFailed(report)
    if report.changed or report.needs_reauth:
        get_run_logger().info("polls of %s/%s: %s", app, label, report.model_dump(exclude_defaults=True))
    return report


class PollsFailed(Exception):
    """Some polls of a batch failed (the others went through); each connection's next poll tries again."""

    def __init__(self, batch: PollBatch) -> None:
        failures = "; ".join(f"{connection}: {reason}" for connection, reason in batch.failed.items())
        super().__init__(f"{len(batch.failed)} of {len(batch.failed) + batch.polled} polls failed: {failures}")
        self.batch = batch


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


async def pause_for_reauth(engine: Store, job: ImportJob, exc: NeedsReauth) -> None:
    """Pause a connection whose grant was revoked, as `needs_reauth`, until it is connected again."""
    await anyio.to_thread.run_sync(set_state, engine, job.tenant, job.connection, "needs_reauth", str(exc)[:300])
    get_run_logger().warning("%s paused until it is connected again: %s", job.connection, exc)
