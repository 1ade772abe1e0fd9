"""The tasks of the import flows: one per page or per delivery drain, never one per record."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
import orjson
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.base import Page, PageRequest
from flows.runtime import ImportRuntime, runtime_for
from inlet.delivery import DrainResult, drain
from inlet.ledger import MappedRecord, PageCounts, PageScope, write_page
from mappings import RecordError

__all__ = ["PageOutcome", "list_records", "send_to_app"]


@dataclass(frozen=True)
class PageOutcome:
    records: int
    counts: PageCounts
    next: PageRequest | None
    seconds_waiting: float  # for the source's answer (not overlapped by the previous page's work)
    seconds_processing: float  # mapping, ledger, outbox and checkpoint


@task(name="list-records", task_run_name="list-records/page-{page_no}", cache_policy=NO_CACHE, persist_result=False)
async def list_records(run_key: str, scope: PageScope, request: PageRequest, page_no: int, seen: int) -> PageOutcome:
    """Read one page, map it, and commit ledger, outbox and checkpoint together."""
    run = runtime_for(run_key)
    started = time.perf_counter()
    page = await run.prefetcher.take(request, seen)
    fetched = time.perf_counter()
    if page.next is not None:
        run.prefetcher.start(page.next, seen + len(page.records))
    counts = await anyio.to_thread.run_sync(_map_and_write, run, scope, page)
    run.page_written.set()
    return PageOutcome(len(page.records), counts, page.next, fetched - started, time.perf_counter() - fetched)


@task(name="send-to-app", cache_policy=NO_CACHE, persist_result=False)
async def send_to_app(run_key: str) -> DrainResult:
    """Deliver the connection's pending events to the team's app, batch by batch."""
    run = runtime_for(run_key)
    return await drain(run.engine, run.loaded.connection.id, run.destination, run.app_client)


def _map_and_write(run: ImportRuntime, scope: PageScope, page: Page) -> PageCounts:
    mapped: list[MappedRecord] = []
    quarantined: list[tuple[str, str, str]] = []
    for raw in page.records:
        external_id = run.connector.record_id(run.collection, raw)
        try:
            record = run.mapper.map(raw)
        except RecordError as exc:
            quarantined.append((external_id, orjson.dumps(raw).decode(), str(exc)))
            continue
        mapped.append(MappedRecord(external_id, record, run.connector.updated_at(run.collection, raw)))
    return write_page(
        run.engine, scope, mapped, quarantined=quarantined, next_request=page.next.to_json() if page.next else None
    )
