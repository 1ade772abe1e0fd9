"""The tasks of the import flows: one per page or per delivery drain, never one per record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.base import Page, PageRequest
from connectors.writes import modified_by_inlet
from flows.runtime import ImportRuntime
from inlet.delivery import DrainResult, drain
from inlet.store import Claim, Heard, MappedRecord, PageCounts, PageScope, echo_ids, write_page
from mappings import RecordError

__all__ = ["RECORDS_PER_WRITE", "PageOutcome", "list_records", "map_records", "send_to_app"]

RECORDS_PER_WRITE = 1000
"""Consecutive pages are committed together until they hold this many records (one page when it holds more)."""


@dataclass
class PageOutcome:
    """What one list-records task read and wrote."""

    records: int
    counts: PageCounts
    next: PageRequest | None  # None: the listing is complete
    pages: int
    seconds_waiting: float  # for the source's answer (not overlapped by the previous page's work)
    seconds_processing: float  # mapping, ledger, outbox and checkpoint

    def add(self, page: Page, counts: PageCounts, waiting: float, processing: float) -> None:
        self.records += len(page.records)
        self.counts.add(counts)
        self.next = page.next
        self.pages += 1
        self.seconds_waiting += waiting
        self.seconds_processing += processing


@task(name="list-records", task_run_name="list-records/page-{page_no}", cache_policy=NO_CACHE, persist_result=False)
async def list_records(run: ImportRuntime, pages: AsyncIterator[Page], scope: PageScope, page_no: int) -> PageOutcome:
    """Take the next pages of the run's listing (page `page_no` on), each mapped and committed with its
    checkpoint in one transaction, while the connector reads the page after it.

    Small pages (HubSpot's cap is 100) are taken several to a task, until about `records_per_task` records:
    a Prefect task run costs the server ~20 ms of CPU, more than a page of 100 records costs inlet. They are also
    written several to a transaction, until about `RECORDS_PER_WRITE` records, with the checkpoint after the last
    of them: a transaction, its six statements and a thread hand-off cost the same for 100 records as for 1,000.
    The next group is read while the last one is written (the writes stay one after the other, in order).
    """
    outcome = PageOutcome(0, PageCounts(), None, 0, 0.0, 0.0)
    writing: asyncio.Future[None] | None = None  # the previous group's write
    read, more = 0, True
    try:
        while more and (writing is None or read < run.records_per_task):
            group, waiting = await _read_group(pages, writing)
            read += sum(len(page.records) for page in group)
            more = group[-1].next is not None
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(_write_group(run, scope, group, outcome, waiting))
        assert writing is not None
        await writing
    except BaseException:
        if writing is not None:  # a failed read: the write under way ends first
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # retrieved: the read's error is the one raised
        raise
    return outcome


async def _read_group(pages: AsyncIterator[Page], writing: asyncio.Future[None] | None) -> tuple[list[Page], float]:
    """Consecutive pages until about `RECORDS_PER_WRITE` records, and the seconds spent waiting for them while no
    write was under way."""
    group: list[Page] = []
    waiting = 0.0
    while not group or (group[-1].next is not None and sum(len(p.records) for p in group) < RECORDS_PER_WRITE):
        started = time.perf_counter()
        group.append(await anext(pages))
        if writing is None or writing.done():
            waiting += time.perf_counter() - started
    return group, waiting


async def _write_group(
    run: ImportRuntime, scope: PageScope, group: list[Page], outcome: PageOutcome, waiting: float
) -> None:
    """Map and commit one group, hand its events to the sender, and count it (times and counts go with its first
    page)."""
    started = time.perf_counter()
    claim = run.handoff.claim()
    counts = await anyio.to_thread.run_sync(_map_and_write, run, scope, group, claim)
    if claim is not None:
        await run.handoff.put(claim.written)
    processing = time.perf_counter() - started
    for n, page in enumerate(group):
        outcome.add(page, counts if n == 0 else PageCounts(), waiting if n == 0 else 0.0, processing if n == 0 else 0.0)
    run.events_written += counts.created + counts.updated
    if run.events_written >= run.destination.batch_size:
        run.page_written.set()


@task(name="send-to-app", cache_policy=NO_CACHE, persist_result=False)
async def send_to_app(run: ImportRuntime, *, alongside: bool = False) -> DrainResult:
    """Deliver the connection's pending events to the team's app, batch by batch.

    `alongside` an import: one task for the whole run (a task run costs the Prefect server ~20-30 ms of CPU,
    so none per batch). It drains whenever a full batch was written, and once more after the last page.
    """
    total = DrainResult()
    handoff = run.handoff if alongside else None
    try:
        while True:
            if alongside and not run.importing_done.is_set():
                waiters = [
                    asyncio.ensure_future(run.page_written.wait()),
                    asyncio.ensure_future(run.importing_done.wait()),
                ]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
            run.page_written.clear()
            run.events_written = 0
            finished = not alongside or run.importing_done.is_set()
            connection = run.loaded.connection.id
            result = await drain(
                run.engine, connection, run.destination, run.app_client, handoff=handoff, final=finished
            )
            total.add(result)
            if result.pending_left or finished:
                return total
    finally:
        if handoff is not None:  # the writer must not wait for a sender that left: the outbox keeps the rest
            handoff.close()


def map_records(
    run: ImportRuntime, raws: Iterable[tuple[str, dict[str, Any]]]
) -> tuple[list[MappedRecord], list[tuple[str, str, str]]]:
    """Map raw records, given with their external ids. A record that fails its mapping or the app schema is
    quarantined as (external id, raw JSON, error) and the others go on; the raw JSON is kept with a mapped
    record only with INLET_KEEP_RAW (for remap)."""
    mapped: list[MappedRecord] = []
    quarantined: list[tuple[str, str, str]] = []
    keep_raw = run.settings.keep_raw
    raws = list(raws)
    updated_at, collection = run.connector.updated_at, run.collection
    stamps = [updated_at(collection, raw) for _, raw in raws]
    echoes = _echoes(run, raws, stamps)
    to_app = run.mapper.map
    for (external_id, raw), stamp in zip(raws, stamps, strict=True):
        try:
            record = to_app(raw)
        except RecordError as exc:
            quarantined.append((external_id, orjson.dumps(raw).decode(), str(exc)))
            continue
        kept = orjson.dumps(raw).decode() if keep_raw else None
        mapped.append(MappedRecord(external_id, record, stamp, kept, echo=external_id in echoes))
    return mapped, quarantined


def _echoes(run: ImportRuntime, raws: list[tuple[str, dict[str, Any]]], stamps: list[str | None]) -> set[str]:
    """The records among `raws` that are inlet's own writes heard again (bi-directional sync)."""
    writes = run.connector.collection(run.collection).writes
    marked = writes is not None and writes.modified_by is not None  # the app's own "modified by" marker

    def by_inlet(raw: dict[str, Any]) -> bool | None:
        return modified_by_inlet(run.connector, run.collection, raw) if marked else None

    heard = (Heard(i, raw, stamp, by_inlet(raw)) for (i, raw), stamp in zip(raws, stamps, strict=True))
    window = run.settings.push_echo_window_seconds
    return echo_ids(run.engine, run.loaded.connection.id, run.data_source, heard, window_seconds=window)


def _map_and_write(run: ImportRuntime, scope: PageScope, group: list[Page], claim: Claim | None) -> PageCounts:
    """Map consecutive pages and commit them in one transaction, with the checkpoint after the last."""
    identified = ((run.connector.record_id(run.collection, raw), raw) for page in group for raw in page.records)
    mapped, quarantined = map_records(run, identified)
    last = group[-1].next
    next_request = last.to_json() if last else None
    return write_page(
        run.engine,
        scope,
        mapped,
        quarantined=quarantined,
        next_request=next_request,
        claim=claim,
        pages=len(group),
    )
