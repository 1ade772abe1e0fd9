"""Apply what a connection's inbox holds (webhook and poll changes) to the team's app.

The deployment's trigger is the Prefect event `inlet.records.changed` for the connection. A run holds
the connection's single-flight slot and drains its inbox in batches: several events of one record become
the newest, `fetch-records` reads created/updated records by id (a webhook is a hint, and a record gone by
then becomes `deleted`; a webhook's deletion stands only when the app no longer has the record),
`apply-changes` maps and commits ledger, outbox and the removal of the handled inbox rows in one
transaction, and `send-to-app` delivers. A killed run leaves its batch in the inbox.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import anyio
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run

from connectors import confirm_hint
from connectors.errors import MalformedPage, NeedsReauth, RequestRejected
from flows.artifacts import publish_delivery_status, publish_summary, publish_trigger
from flows.run_tags import label_run
from flows.runtime import (
    ConnectionId,
    DataSource,
    ImportJob,
    ImportRuntime,
    TenantId,
    TriggeringEvent,
    by_reference,
    open_runtime,
)
from flows.single_flight import single_flight, take_turn
from flows.summaries import Auth, DeliverySummary
from flows.task_cache import NEVER_CACHED
from flows.tasks import map_records, send_to_app
from inlet.errors import DeliveryError
from inlet.settings import get_settings
from inlet.store import (
    InboxRow,
    PageCounts,
    PageScope,
    current_generation,
    deleted_echoes,
    inbox,
    quarantine_events,
    write_changes,
)

__all__ = ["IncrementalSummary", "apply_inbox", "apply_stranded", "incremental_import"]

_FETCH_CONCURRENCY = 8


class IncrementalSummary(DeliverySummary):
    """The figures of one incremental-import run."""

    batches: int = 0
    inbox_events: int = 0
    records: int = 0
    fetched: int = 0
    gone_when_fetched: int = 0
    poison_events: int = 0
    auth: Auth = "ok"


@flow(name="incremental-import", flow_run_name="incremental-import/{tenant}/{connection}", persist_result=False)
async def incremental_import(
    tenant: TenantId,
    connection: ConnectionId,
    data_source: DataSource = "users",
    triggered_by: TriggeringEvent | None = None,
) -> IncrementalSummary:
    """Drain one connection's inbox into the team's app (one run at a time per connection).

    Args:
        tenant: the tenant id.
        connection: the connection whose inbox to apply.
        data_source: the data model, e.g. users.
        triggered_by: the inlet.records.changed event that started the run (set by the automation).
    """
    return await _apply(tenant, connection, data_source, str(flow_run.id or ""), triggered_by)


@task(
    name="apply-inbox",
    task_run_name="apply-inbox/{tenant}/{connection}",
    cache_policy=NEVER_CACHED,  # not NO_CACHE: a task worker would serve it with DEFAULT (flows/task_cache.py)
)
async def apply_inbox(
    tenant: str,
    connection: str,
    data_source: str = "users",
    triggered_by: TriggeringEvent | None = None,
    wait_seconds: float = 900,
) -> IncrementalSummary:
    """The same drain as `incremental-import`, as a background task a task worker runs at once (`.delay()`).

    With `wait_seconds=0` (the scheduler's poll batches) a connection another run holds is left at once: its
    changes stay in the inbox for that connection's next poll, and the batch's other connections go on."""
    run_id = str(task_run.id or "")
    try:
        return await _apply(tenant, connection, data_source, run_id, triggered_by, wait_seconds)
    except TimeoutError:
        if wait_seconds:
            raise
        get_run_logger().info("%s: another run holds the connection; its changes wait for the next poll", connection)
        return IncrementalSummary.of(ImportJob(tenant=tenant, connection=connection, data_source=data_source), run_id)


async def apply_stranded(tenant: str, connection: str, data_source: str, run_id: str) -> IncrementalSummary | None:
    """Drain a connection whose changes wait longer than they should (deliver-outbox's sweep, in its flow run);
    None, at once, when another run holds the connection: that run is draining it."""
    try:
        return await _apply(tenant, connection, data_source, run_id, None, wait_seconds=0)
    except TimeoutError:
        return None


async def _apply(
    tenant: str,
    connection: str,
    data_source: str,
    run_id: str,
    triggered_by: TriggeringEvent | None,
    wait_seconds: float = 900,
) -> IncrementalSummary:
    if triggered_by is not None:
        await publish_trigger(triggered_by.ui_path(), "incremental-import", tenant, connection)
    job = ImportJob(tenant=tenant, connection=connection, data_source=data_source)
    async with take_turn(connection) as ours:
        if not ours:
            get_run_logger().info("another run of %s waits to drain its inbox; it will apply these changes", connection)
            return IncrementalSummary.of(job, run_id)
        try:
            run = open_runtime(job, get_settings())
        except NeedsReauth:  # fail at once, keeping the inbox: no request, no token endpoint call
            flagged = IncrementalSummary.of(job, run_id)
            flagged.auth = "needs_reauth"
            await publish_summary("incremental-import", tenant, connection, summary=flagged.model_dump())
            raise
        try:
            await label_run(tenant, connection, run.loaded.connection.app, data_source)
            async with single_flight(connection, run.settings.single_flight_lease_seconds, wait_seconds):
                return await _drain(run, run_id)
        finally:
            await run.aclose()


async def _drain(run: ImportRuntime, run_id: str) -> IncrementalSummary:
    job = run.job
    summary = IncrementalSummary.of(job, run_id)
    scope = PageScope(job.tenant, job.connection, run.data_source, _generation(run), run_id or "local")
    while rows := await anyio.to_thread.run_sync(inbox.pending, run.engine, job.connection, run.destination.batch_size):
        rows = await _set_aside(run, rows, _bad_ids(run, rows), summary)
        hints = [(r.external_id, r.kind) for r in _coalesce(rows) if _needs_fetch(r)]
        fetched, failed = await fetch_records(by_reference(run), hints)
        rows = await _set_aside(run, rows, failed, summary)
        summary.add_counts(await apply_changes(by_reference(run), scope, rows, fetched))
        summary.batches += 1
        summary.inbox_events += len(rows)
        summary.records += len(_coalesce(rows))
        summary.fetched += len(fetched)
        summary.gone_when_fetched += sum(1 for record in fetched.values() if record is None)
        summary.add_delivery(await send_to_app(by_reference(run)))
        if summary.pending_delivery:
            break
    await publish_summary("incremental-import", job.tenant, job.connection, summary=summary.model_dump())
    await publish_delivery_status(run.engine, run.settings)
    figures = ", ".join(f"{name} {value}" for name, value in summary.model_dump().items())
    get_run_logger().info("incremental import of %s/%s: %s", job.tenant, job.connection, figures)
    if summary.pending_delivery or summary.delivery_error:
        raise DeliveryError(summary.delivery_error or "the team's app did not take the events; they wait in the outbox")
    return summary


@task(name="fetch-records", cache_policy=NO_CACHE, persist_result=False)
async def fetch_records(
    run: ImportRuntime, hints: list[tuple[str, str]]
) -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
    """Read hinted records, (id, kind), by id (a few at a time); None for a record the app no longer has. An id
    whose fetch the app rejects for good (RequestRejected, MalformedPage) is returned apart with the reason."""
    gate = asyncio.Semaphore(_FETCH_CONCURRENCY)
    failed: dict[str, str] = {}

    async def one(external_id: str, kind: str) -> tuple[str, dict[str, Any] | None]:
        async with gate:
            try:
                return external_id, await confirm_hint(run.connector, run.collection, kind, external_id)
            except (RequestRejected, MalformedPage) as exc:
                failed[external_id] = f"fetch failed for good: {exc}"
                return external_id, None

    fetched = dict(await asyncio.gather(*(one(i, kind) for i, kind in hints)))
    return {i: record for i, record in fetched.items() if i not in failed}, failed


def _bad_ids(run: ImportRuntime, rows: list[InboxRow]) -> dict[str, str]:
    """Ids that fail the collection's id pattern: no fetch is sent for them."""
    pattern = re.compile(run.connector.collection(run.collection).id_pattern)
    return {
        r.external_id: f"the id does not match {run.connector.name}'s id pattern ({len(r.external_id)} chars)"
        for r in rows
        if not pattern.fullmatch(r.external_id)
    }


async def _set_aside(
    run: ImportRuntime, rows: list[InboxRow], poison: dict[str, str], summary: IncrementalSummary
) -> list[InboxRow]:
    """Quarantine the events of these ids with their reason (`inlet inbox list`); the others go on."""
    if not poison:
        return rows
    reasons = {r.id: poison[r.external_id] for r in rows if r.external_id in poison}
    await anyio.to_thread.run_sync(quarantine_events, run.engine, reasons)
    summary.poison_events += len(reasons)
    get_run_logger().warning("%d poison inbox events set aside: see `inlet inbox list`", len(reasons))
    return [r for r in rows if r.external_id not in poison]


@task(name="apply-changes", cache_policy=NO_CACHE, persist_result=False)
async def apply_changes(
    run: ImportRuntime, scope: PageScope, rows: list[InboxRow], fetched: dict[str, dict[str, Any] | None]
) -> PageCounts:
    """Map the batch's newest change of each record and commit it with the removal of the inbox rows."""
    upserts: list[tuple[str, dict[str, Any]]] = []
    deleted: list[str] = []
    for row in _coalesce(rows):
        raw = fetched.get(row.external_id) if _needs_fetch(row) else None if row.kind == "deleted" else row.record
        if raw is None:
            deleted.append(row.external_id)
        else:
            upserts.append((row.external_id, raw))
    mapped, quarantined = map_records(run, upserts)
    ids = [row.id for row in rows]
    window = run.settings.push_echo_window_seconds
    echoed = deleted_echoes(run.engine, scope.connection_id, scope.data_source, deleted, window_seconds=window)
    counts = await anyio.to_thread.run_sync(
        lambda: write_changes(
            run.engine,
            scope,
            mapped,
            deleted,
            quarantined=quarantined,
            handled_inbox_ids=ids,
            echoed_deletes=sorted(echoed),
        )
    )
    run.page_written.set()
    return counts


def _coalesce(rows: list[InboxRow]) -> list[InboxRow]:
    """The newest event of each record, in the order of those newest events."""
    latest: dict[str, InboxRow] = {}
    for row in rows:
        latest.pop(row.external_id, None)
        latest[row.external_id] = row
    return list(latest.values())


def _needs_fetch(row: InboxRow) -> bool:
    """An upsert without its record, or a webhook's deletion: a hint the app confirms."""
    return row.record is None and (row.kind == "upsert" or row.source == "webhook")


def _generation(run: ImportRuntime) -> str:
    """The enumeration a record counts as seen by: the current full import's, so its sweep keeps it."""
    return current_generation(run.engine, run.job.connection, run.data_source) or "incremental"
