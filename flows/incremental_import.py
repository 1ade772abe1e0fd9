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
import time
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
from flows.single_flight import single_flight, staying_warm, take_turn
from flows.summaries import Auth, DeliverySummary
from flows.task_cache import NEVER_CACHED
from flows.tasks import map_records, send_to_app
from flows.warm import changes_arrive, changes_waiting
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

__all__ = [
    "IncrementalSummary",
    "apply_inbox",
    "apply_stranded",
    "drain_inbox",
    "fail_on_delivery",
    "incremental_import",
]

_FETCH_CONCURRENCY = 8
_PLAIN_BATCH = 20  # inbox events a drain applies by plain calls, without child task runs


class IncrementalSummary(DeliverySummary):
    """The figures of one incremental-import run."""

    batches: int = 0
    inbox_events: int = 0
    records: int = 0
    fetched: int = 0
    gone_when_fetched: int = 0
    poison_events: int = 0
    seconds_waiting_for_slot: float = 0.0  # for the connection's Prefect slot: another run, or a slow Prefect server
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
    warm_seconds: float = 0,
) -> IncrementalSummary:
    """The same drain as `incremental-import`, as a background task a task worker runs at once (`.delay()`).

    With `wait_seconds=0` (the scheduler's poll batches) a connection another run holds is left at once: its
    changes stay in the inbox for that connection's next poll, and the batch's other connections go on.
    With `warm_seconds` (the receiver's runs) the run stays on the connection after the inbox is empty, and applies
    what arrives until that long passes without a change (`flows.warm`)."""
    run_id = str(task_run.id or "")
    try:
        return await _apply(tenant, connection, data_source, run_id, triggered_by, wait_seconds, warm_seconds)
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
    warm_seconds: float = 0,
) -> IncrementalSummary:
    job = ImportJob(tenant=tenant, connection=connection, data_source=data_source)
    async with take_turn(connection) as ours:
        if not ours:
            get_run_logger().info(
                "another run of %s drains its inbox next or keeps it warm: it applies these", connection
            )
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
            summary = IncrementalSummary.of(job, run_id)
            asked = time.perf_counter()
            async with single_flight(connection, run.settings.single_flight_lease_seconds, wait_seconds):
                summary.seconds_waiting_for_slot = time.perf_counter() - asked
                await drain_inbox(run, summary)
                if warm_seconds:
                    await _stay_warm(run, summary, warm_seconds)
            return await _report(run, summary, triggered_by)
        finally:
            await run.aclose()


async def _stay_warm(run: ImportRuntime, summary: IncrementalSummary, warm_seconds: float) -> None:
    """Apply what reaches the inbox, holding the slot, until `warm_seconds` pass without a change or another run
    waits for the slot; then look once more, since runs that started meanwhile left their changes to this one."""
    connection = run.job.connection
    while not (summary.pending_delivery or summary.delivery_error):
        async with staying_warm(connection):
            arrived = await changes_arrive(run.engine, connection, warm_seconds)
        if not arrived and not await changes_waiting(run.engine, connection):
            return
        before = summary.inbox_events
        await drain_inbox(run, summary)
        get_run_logger().info("%s: applied %d more inbox events", connection, summary.inbox_events - before)
        if not arrived:
            return


async def drain_inbox(run: ImportRuntime, summary: IncrementalSummary) -> None:
    """Apply the inbox batch by batch until it is empty (or the team's app stops taking events); the caller holds
    the connection's turn and slot."""
    job = run.job
    run_id = summary.flow_run_id
    scope = PageScope(job.tenant, job.connection, run.data_source, _generation(run), run_id or "local")
    while rows := await anyio.to_thread.run_sync(inbox.pending, run.engine, job.connection, run.destination.batch_size):
        rows = await _set_aside(run, rows, _bad_ids(run, rows), summary)
        hints = [(r.external_id, r.kind) for r in _coalesce(rows) if _needs_fetch(r)]
        if len(rows) > _PLAIN_BATCH:  # task runs of their own, with their timings in the UI
            fetched, failed = await fetch_records(by_reference(run), hints)
            rows = await _set_aside(run, rows, failed, summary)
            counts = await apply_changes(by_reference(run), scope, rows, fetched)
            drained = await send_to_app(by_reference(run))
        else:  # a task run costs the Prefect server about three writes: more than a few changes cost inlet
            fetched, failed = await fetch_records.fn(run, hints)
            rows = await _set_aside(run, rows, failed, summary)
            counts = await apply_changes.fn(run, scope, rows, fetched)
            drained = await send_to_app.fn(run)
        summary.add_counts(counts)
        summary.batches += 1
        summary.inbox_events += len(rows)
        summary.records += len(_coalesce(rows))
        summary.fetched += len(fetched)
        summary.gone_when_fetched += sum(1 for record in fetched.values() if record is None)
        summary.add_delivery(drained)
        if summary.pending_delivery:
            break


async def _report(
    run: ImportRuntime, summary: IncrementalSummary, triggered_by: TriggeringEvent | None
) -> IncrementalSummary:
    """The run's artifacts when it applied something (each costs the Prefect server a write; a run that found the
    inbox empty says so in its log line), the delivery figures when the app did not take everything."""
    job = run.job
    troubled = summary.pending_delivery or bool(summary.delivery_error) or summary.dead_letters > 0
    if summary.inbox_events or troubled:
        if triggered_by is not None:
            await publish_trigger(triggered_by.ui_path(), "incremental-import", job.tenant, job.connection)
        await publish_summary("incremental-import", job.tenant, job.connection, summary=summary.model_dump())
    if troubled:
        await publish_delivery_status(run.engine, run.settings)
    figures = ", ".join(f"{name} {value}" for name, value in summary.model_dump().items())
    get_run_logger().info("incremental import of %s/%s: %s", job.tenant, job.connection, figures)
    fail_on_delivery(summary)
    return summary


def fail_on_delivery(summary: IncrementalSummary) -> None:
    """Raise DeliveryError when the team's app did not take everything the drain wrote (the events wait in the
    outbox; `inlet status` shows the destination's breaker and dead letters)."""
    if summary.pending_delivery or summary.delivery_error:
        raise DeliveryError(summary.delivery_error or "the team's app did not take the events; they wait in the outbox")


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
