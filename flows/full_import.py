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
import gc
import time
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
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
    list_connections,
    live_count,
    shared_store,
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
    seconds_rate_limited: float = 0.0
    seconds_mapping_and_writing: float = 0.0
    seconds_posting_to_app: float = 0.0
    auth: Auth = "ok"


def _run_name() -> str:
    job = flow_run.parameters.get("job", {})
    job = job.model_dump() if isinstance(job, BaseModel) else job
    tenant, connection = str(job.get("tenant")), str(job.get("connection"))
    return f"full-import/{tenant}/{connection}/{job.get('data_source') or _held(tenant, connection)}"


def _held(tenant: str, connection: str) -> str:
    """The data source the connection holds, for a job that names none ("?" when there is no such connection:
    the run then fails saying so)."""
    try:
        connections = list_connections(shared_store(get_settings().store_url), tenant)
    except Exception:  # a name is no place to fail: open_runtime reports what is wrong with the store
        return "?"
    return next((c.data_source for c in connections if c.id == connection), "?")


@flow(name="full-import", flow_run_name=_run_name, persist_result=False)
async def full_import(job: ImportJob) -> ImportSummary:
    """Full import of one connection's data source; resumes an unfinished enumeration.

    Args:
        job: which tenant's connection and data source to import, and how (restart, force_delete).
    """
    try:
        run = open_runtime(job, get_settings())
    except NeedsReauth as exc:  # fail fast: no request, no token endpoint call, no retries burnt
        summary = ImportSummary.of(job, str(flow_run.id or ""))
        summary.auth = "needs_reauth"
        data_source = job.data_source or "-"  # the connection's, unread: its grant stopped the run first
        await publish_summary("full-import", job.tenant, job.connection, data_source, summary=summary.model_dump())
        get_run_logger().error("%s", exc)
        raise
    try:
        await label_run(job.tenant, job.connection, run.loaded.connection.app, run.data_source)
        async with single_flight(job.connection, run.settings.single_flight_lease_seconds):
            with _fewer_collections():
                return await _import(run)
    finally:
        await run.aclose()


_collecting_less = 0  # imports running in this process with the collector's thresholds raised


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the garbage collector's thresholds while importing. A page makes ~10 objects per record, all freed
    by reference counting, and at the default (a pass per 700 allocations, a full one every 100 passes) the
    collector walks them and the process's long-lived objects for nothing: 7% of the import's CPU samples."""
    global _collecting_less
    if _collecting_less == 0:
        gc.set_threshold(10_000, 20, 100)
    _collecting_less += 1
    try:
        yield
    finally:
        _collecting_less -= 1
        if _collecting_less == 0:
            gc.set_threshold(*_DEFAULT_GC)


_DEFAULT_GC = gc.get_threshold()


async def _import(run: ImportRuntime) -> ImportSummary:
    started = time.perf_counter()
    logger = get_run_logger()
    job, app = run.job, run.loaded.connection.app
    checkpoint = await anyio.to_thread.run_sync(
        lambda: start_or_resume(run.engine, job.connection, run.data_source, restart=job.restart)
    )
    scope = PageScope(job.tenant, job.connection, run.data_source, checkpoint.generation, str(flow_run.id or "local"))
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
        run.data_source,
        expected=live_count(run.engine, job.connection, run.data_source) or None,
    )
    delivery = asyncio.create_task(_deliver_alongside(run))
    counts = PageCounts()
    try:
        await _read_pages(run, scope, checkpoint, summary, counts, progress)
        summary.complete = True
        seen = checkpoint.records + summary.records_seen
        await progress.update(seen, done=True, rate_limited=run.connector.seconds_rate_limited)
        _sweep(run, scope, summary, logger)
        await anyio.to_thread.run_sync(import_completed, run.engine, job.connection, run.data_source)
    except NeedsReauth:
        summary.auth = "needs_reauth"
        raise
    finally:
        run.importing_done.set()
        drained = await delivery
        await anyio.to_thread.run_sync(run.handoff.release, run.engine, run.loaded.connection.id)
        summary.seconds_total = time.perf_counter() - started
        summary.seconds_rate_limited = run.connector.seconds_rate_limited
        _fill(summary, counts, drained)
        await publish_summary("full-import", job.tenant, job.connection, run.data_source, summary=summary.model_dump())
        await publish_delivery_status(run.engine, run.settings)
    figures = ", ".join(f"{name} {value}" for name, value in summary.model_dump().items())
    logger.info("full import of %s/%s (%s): %s", job.tenant, job.connection, app, figures)
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
            await progress.update(seen, rate_limited=run.connector.seconds_rate_limited)
            if outcome.next is None:
                return


async def _deliver_alongside(run: ImportRuntime) -> DrainResult:
    """One send-to-app task for the run: it drains whenever a full batch waits, and once more after the last page."""
    return await send_to_app(by_reference(run), alongside=True)


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
        "seconds_rate_limited",
        "seconds_mapping_and_writing",
        "seconds_posting_to_app",
    ):
        setattr(summary, name, round(getattr(summary, name), 2))
