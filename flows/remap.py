"""Re-map what inlet already holds, with no call to the external app.

`remap` re-renders every record whose raw payload the ledger kept, with the connection's current mapping,
and delivers only the records whose mapped output changed (the ledger's payload hash decides).
`retry-quarantine` maps quarantined records again (after the mapping or the app schema was fixed): those
that now pass go to the ledger and the outbox and leave the quarantine; the others stay, with the new error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import anyio
import orjson
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.artifacts import publish_summary
from flows.runtime import ImportJob, ImportRuntime, by_reference, open_runtime
from flows.summaries import DeliverySummary
from flows.tasks import map_records, send_to_app
from inlet.errors import DeliveryError
from inlet.settings import get_settings
from inlet.store import (
    PageCounts,
    PageScope,
    current_generation,
    quarantined,
    raw_batches,
    write_changes,
)

__all__ = ["RemapSummary", "remap", "retry_quarantine"]


class RemapSummary(DeliverySummary):
    """The figures of one remap or quarantine retry."""

    records: int = 0


@flow(name="remap", flow_run_name="remap/{tenant}/{connection}", persist_result=False)
async def remap(tenant: str, connection: str, data_source: str = "users") -> RemapSummary:
    """Re-render every kept record with the current mapping; deliver only the changed ones.

    Args:
        tenant: the tenant id.
        connection: the connection whose kept records to re-render.
        data_source: the data model, e.g. users.
    """
    run = open_runtime(ImportJob(tenant=tenant, connection=connection, data_source=data_source), get_settings())
    try:
        batches = raw_batches(run.engine, connection, data_source)
        return await _remap(run, "remap", ((i, raw) for batch in batches for i, raw in batch))
    finally:
        await run.aclose()


@flow(name="retry-quarantine", flow_run_name="retry-quarantine/{tenant}/{connection}", persist_result=False)
async def retry_quarantine(
    tenant: str, connection: str, data_source: str = "users", ids: Sequence[int] = ()
) -> RemapSummary:
    """Map quarantined records again; the ones that pass are delivered and leave the quarantine.

    Args:
        tenant: the tenant id.
        connection: the connection whose quarantined records to map again.
        data_source: the data model, e.g. users.
        ids: only these quarantine ids (`inlet quarantine list`); empty: every quarantined record.
    """
    run = open_runtime(ImportJob(tenant=tenant, connection=connection, data_source=data_source), get_settings())
    try:
        rows = [q for q in quarantined(run.engine, [connection], ids=ids) if q.data_source == data_source]
        return await _remap(run, "retry-quarantine", ((q.external_id, q.raw) for q in rows))
    finally:
        await run.aclose()


async def _remap(run: ImportRuntime, name: str, records: Iterable[tuple[str, str]]) -> RemapSummary:
    job = run.job
    summary = RemapSummary.of(job, str(flow_run.id or ""))
    scope = PageScope(job.tenant, job.connection, run.data_source, _generation(run), str(flow_run.id or "local"))
    counts = PageCounts()
    batch: list[tuple[str, str]] = []
    for item in records:
        batch.append(item)
        if len(batch) >= 1000:
            counts.add(await map_stored(by_reference(run), scope, batch))
            batch = []
    if batch:
        counts.add(await map_stored(by_reference(run), scope, batch))
    drained = await send_to_app(by_reference(run))
    summary.records = counts.created + counts.updated + counts.unchanged + counts.quarantined
    summary.add_counts(counts)
    summary.add_delivery(drained)
    await publish_summary(name, job.tenant, job.connection, summary=summary.model_dump())
    get_run_logger().info("%s of %s/%s: %s", name, job.tenant, job.connection, summary.model_dump())
    if failure := drained.failure():
        raise DeliveryError(failure)
    return summary


@task(name="map-stored", cache_policy=NO_CACHE, persist_result=False)
async def map_stored(run: ImportRuntime, scope: PageScope, batch: list[tuple[str, str]]) -> PageCounts:
    """Map a batch of stored raw payloads and commit the changed ones to the ledger and the outbox."""
    mapped, failed = map_records(run, ((external_id, orjson.loads(raw)) for external_id, raw in batch))
    return await anyio.to_thread.run_sync(lambda: write_changes(run.engine, scope, mapped, [], quarantined=failed))


def _generation(run: ImportRuntime) -> str:
    """The enumeration records count as seen by: the current full import's, so its sweep keeps them."""
    return current_generation(run.engine, run.job.connection, run.data_source) or "remap"
