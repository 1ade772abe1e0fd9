"""Import every record of one tenant's connection into the team's app.

One run at a time per connection (the connection's Prefect concurrency slot, shared with incremental-import).
A loop of `list-records` tasks, one per page, each committing its ledger rows, outbox events and
checkpoint in one transaction, while `send-to-app` drains the outbox alongside. A run that crashed or
was cancelled resumes from its checkpoint. After a complete enumeration, records never seen become
`deleted` (with a guard against mass deletes).

Requires: the inlet store (INLET_DATABASE_URL or .inlet/inlet.db), its credentials key, and the
destination's signing secret (see inlet.settings).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any

import anyio
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel

from connectors.base import PageRequest
from connectors.errors import NeedsReauth
from connectors.incremental import read_position
from flows.artifacts import Progress, publish_delivery_status, publish_summary
from flows.run_tags import label_run
from flows.runtime import ImportJob, ImportRuntime, by_reference, open_runtime
from flows.single_flight import single_flight
from flows.summaries import Auth, DeliverySummary, fail_on_quarantine_share
from flows.tasks import list_records, send_to_app
from inlet.delivery import DrainResult
from inlet.errors import DeliveryError
from inlet.settings import get_settings
from inlet.store import (
    Checkpoint,
    PageCounts,
    PageScope,
    SweepResult,
    import_completed,
    import_started,
    live_count,
    start_or_resume,
    sweep,
)

__all__ = ["ImportSummary", "full_import"]


class ImportSummary(DeliverySummary):
    """The figures of one full-import run."""

    resumed_at_page: int = 0
    pages: int = 0
    records_seen: int = 0
    delete_guard: str = ""
    complete: bool = False
    seconds_total: float = 0.0
    seconds_waiting_for_source: float = 0.0
    seconds_mapping_and_writing: float = 0.0
    seconds_posting_to_app: float = 0.0
    auth: Auth = "ok"


def _run_name() -> str:
    job = flow_run.parameters.get("job", {})
    job = job.model_dump() if isinstance(job, BaseModel) else job
    return f"full-import/{job.get('tenant')}/{job.get('connection')}/{job.get('data_source', 'users')}"


@flow(name="full-import", flow_run_name=_run_name, persist_result=False)
async def full_import(job: ImportJob) -> ImportSummary:
    """Full import of one connection's data source; resumes an unfinished enumeration."""
    try:
        run = open_runtime(job, get_settings())
    except NeedsReauth as exc:  # fail fast: no request, no token endpoint call, no retries burnt
        summary = ImportSummary.of(job, str(flow_run.id or ""))
        summary.auth = "needs_reauth"
        await publish_summary("full-import", job.tenant, job.connection, job.data_source, summary=summary.model_dump())
        get_run_logger().error("%s", exc)
        raise
    try:
        await label_run(job.tenant, job.connection, run.loaded.connection.app, job.data_source)
        async with single_flight(job.connection, run.settings.single_flight_lease_seconds):
            return await _import(run)
    finally:
        await run.aclose()


async def _import(run: ImportRuntime) -> ImportSummary:
    started = time.perf_counter()
    logger = get_run_logger()
    job, app = run.job, run.loaded.connection.app
    checkpoint = await anyio.to_thread.run_sync(
        lambda: start_or_resume(run.engine, job.connection, job.data_source, restart=job.restart)
    )
    scope = PageScope(job.tenant, job.connection, job.data_source, checkpoint.generation, str(flow_run.id or "local"))
    summary = ImportSummary.of(job, str(flow_run.id or ""))
    summary.resumed_at_page = checkpoint.pages
    if checkpoint.pages:
        logger.info("resuming enumeration %s at page %d", checkpoint.generation[:8], checkpoint.pages + 1)
    else:  # before enumerating: where the change source stands, so the first poll catches what changes meanwhile
        position = await read_position(run.connector, run.collection)
        await anyio.to_thread.run_sync(import_started, run.engine, job.connection, position)
    progress = await Progress.start(
        "full-import",
        job.tenant,
        job.connection,
        job.data_source,
        expected=live_count(run.engine, job.connection, job.data_source) or None,
    )
    importing_done = asyncio.Event()
    delivery = asyncio.create_task(_deliver_alongside(run, importing_done))
    counts = PageCounts()
    try:
        await _read_pages(run, scope, checkpoint, summary, counts, progress)
        summary.complete = True
        await progress.update(summary.records_seen, done=True)
        _sweep(run, scope, summary, logger)
        await anyio.to_thread.run_sync(import_completed, run.engine, job.connection, job.data_source)
    except NeedsReauth:
        summary.auth = "needs_reauth"
        raise
    finally:
        importing_done.set()
        drained = await delivery
        summary.seconds_total = time.perf_counter() - started
        _fill(summary, counts, drained)
        await publish_summary("full-import", job.tenant, job.connection, job.data_source, summary=summary.model_dump())
        await publish_delivery_status(run.engine, run.settings)
    logger.info("full import of %s/%s (%s): %s", job.tenant, job.connection, app, summary.model_dump())
    if failure := drained.failure():
        raise DeliveryError(failure)
    await fail_on_quarantine_share(run, scope.run_id, summary.records_seen, summary.quarantined)
    return summary


async def _read_pages(
    run: ImportRuntime,
    scope: PageScope,
    checkpoint: Checkpoint,
    summary: ImportSummary,
    counts: PageCounts,
    progress: Progress,
) -> None:
    start = PageRequest.from_json(checkpoint.next_request) if checkpoint.next_request else None
    page_no, seen = checkpoint.pages, checkpoint.records
    listing = run.connector.pages(run.collection, start, seen=seen, prefetch=True)
    async with aclosing(listing) as pages:
        while True:
            outcome = await list_records(by_reference(run), pages, scope, page_no + 1)
            page_no += outcome.pages
            seen += outcome.records
            summary.pages += outcome.pages
            summary.records_seen += outcome.records
            summary.seconds_waiting_for_source += outcome.seconds_waiting
            summary.seconds_mapping_and_writing += outcome.seconds_processing
            counts.add(outcome.counts)
            await progress.update(seen)
            if outcome.next is None:
                return


async def _deliver_alongside(run: ImportRuntime, importing_done: asyncio.Event) -> DrainResult:
    """Drain the outbox whenever a full batch of events waits, and once more after the last page."""
    total = DrainResult()
    while True:
        if not importing_done.is_set():
            waiters = [asyncio.ensure_future(run.page_written.wait()), asyncio.ensure_future(importing_done.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        run.page_written.clear()
        run.events_written = 0
        finished = importing_done.is_set()
        result = await send_to_app(by_reference(run))
        total.add(result)
        if result.pending_left or finished:
            return total


def _sweep(run: ImportRuntime, scope: PageScope, summary: ImportSummary, logger: Any) -> None:
    result: SweepResult = sweep(run.engine, scope, max_share=run.settings.max_delete_share, force=run.job.force_delete)
    summary.deleted = result.deleted
    if result.refused:
        summary.delete_guard = result.reason
        logger.warning(result.reason)
    elif result.deleted:
        logger.info("%d records vanished from the source and were marked deleted", result.deleted)
    run.page_written.set()


def _fill(summary: ImportSummary, counts: PageCounts, drained: DrainResult) -> None:
    summary.add_counts(counts)
    summary.add_delivery(drained)
    summary.seconds_posting_to_app = drained.seconds_posting
    for name in (
        "seconds_total",
        "seconds_waiting_for_source",
        "seconds_mapping_and_writing",
        "seconds_posting_to_app",
    ):
        setattr(summary, name, round(getattr(summary, name), 2))
