"""Poll one connection for changes and put them in its inbox; a scheduled deployment per connection.

With an incremental API (`changes:` or a changes hook: Kinto `_since`, delta links, sync tokens) it pulls
since the stored token; the changes and the new token commit together, then `inlet.records.changed` is
emitted. Without one (json-server), or when the token expired (a resync), it enumerates the source and
diffs against the ledger: records whose mapped hash changed become upserts, records that vanished become
deletions, unless that would delete a suspicious share of them (the same guard as the full import).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import Field

from connectors.changes import Change
from connectors.errors import NeedsReauth
from connectors.incremental import pull_changes as pull_source_changes
from flows.artifacts import publish_summary
from flows.events import emit_changed
from flows.incremental_import import apply_inbox
from flows.run_tags import label_run
from flows.runtime import ConnectionId, DataSource, ImportJob, ImportRuntime, TenantId, by_reference, open_runtime
from flows.summaries import Auth, RunSummary
from inlet.settings import get_settings
from inlet.store import HeardChange, PageScope, inbox, live_ids, payload_hash, record_poll, stored_hashes, utcnow
from mappings import RecordError

__all__ = ["PollSummary", "poll", "poll_changes"]


class PollSummary(RunSummary):
    """What one poll found."""

    mode: str = ""  # changes, resync or scan
    changes: int = 0
    upserts: int = 0
    deletions: int = 0
    added_to_inbox: int = 0
    applied_from_inbox: int = 0  # inbox events (this poll's and webhooks') the run applied itself
    since: str | None = None
    delete_guard: str = ""
    auth: Auth = "ok"


@flow(name="poll-changes", flow_run_name="poll-changes/{tenant}/{connection}", persist_result=False)
async def poll_changes(
    tenant: TenantId,
    connection: ConnectionId,
    data_source: DataSource = "users",
    force_delete: Annotated[bool, Field(description="let a full-scan diff delete past the mass-delete guard")] = False,
    apply: Annotated[
        bool,
        Field(
            description="then apply the whole inbox in this run (webhook events included), as the scheduler's polls do"
        ),
    ] = False,
) -> PollSummary:
    """Pull what changed since the last poll into the connection's inbox (and, with `apply`, apply the inbox).

    Args:
        tenant: the tenant id.
        connection: the connection to poll.
        data_source: the data model, e.g. users.
        force_delete: let a full-scan diff delete past the mass-delete guard.
        apply: then apply the whole inbox in this run (webhook events included), as the scheduler's polls do.
    """
    job = ImportJob(tenant=tenant, connection=connection, data_source=data_source)
    try:
        run = open_runtime(job, get_settings())
    except NeedsReauth:  # a scheduled poll fails at once: no request, no token endpoint call, no retries burnt
        flagged = PollSummary.of(job, str(flow_run.id or ""))
        flagged.auth = "needs_reauth"
        await publish_summary("poll-changes", tenant, connection, summary=flagged.model_dump())
        raise
    try:
        await label_run(tenant, connection, run.loaded.connection.app, data_source)
        summary = await poll(run, str(flow_run.id or ""), force_delete=force_delete, traced=True)
        inline = apply or run.settings.incremental_runner == "task-worker"  # a run already: apply here
        if summary.added_to_inbox:
            emit_changed(tenant, connection, source="poll", submit=not inline)
        if inline and (summary.added_to_inbox or await anyio.to_thread.run_sync(inbox.depth, run.engine, connection)):
            summary.applied_from_inbox = (await apply_inbox(tenant, connection, data_source)).inbox_events
        await publish_summary("poll-changes", tenant, connection, summary=summary.model_dump())
        get_run_logger().info("poll of %s/%s: %s", tenant, connection, summary.model_dump())
        return summary
    finally:
        await run.aclose()


async def poll(run: ImportRuntime, run_id: str, *, force_delete: bool = False, traced: bool = False) -> PollSummary:
    """One poll of an opened connection: what changed goes to its inbox with the new watermark, in one commit.

    `traced` runs the source's pull or scan as task runs of their own (a poll-changes flow run shows them); the
    scheduler's batched polls call them plainly, as one task run's work."""
    summary = PollSummary.of(run.job, run_id)
    started = utcnow()
    heard, since, resynced = await _listen(run, summary, traced)
    deletions = [h for h in heard if h.kind == "deleted"]
    if summary.mode in ("resync", "scan", "first-pull") and deletions:
        heard = _guard(run, heard, deletions, summary, force_delete)
    summary.changes = len(heard)
    summary.upserts = sum(1 for h in heard if h.kind == "upsert")
    summary.deletions = sum(1 for h in heard if h.kind == "deleted")
    summary.added_to_inbox = await anyio.to_thread.run_sync(_store, run, heard, since, resynced)
    summary.since = since
    await anyio.to_thread.run_sync(record_poll, run.engine, run.job.connection, summary.mode, None, started)
    return summary


async def _listen(run: ImportRuntime, summary: PollSummary, traced: bool) -> tuple[list[HeardChange], str | None, bool]:
    collection = run.connector.collection(run.collection)
    if collection.changes is None and run.connector.hooks.changes is None:
        summary.mode = "scan"
        return await (scan_source(by_reference(run)) if traced else _scan(run)), None, False
    since = await anyio.to_thread.run_sync(inbox.stored_since, run.engine, run.job.connection, run.data_source)
    pulled = pull_changes(by_reference(run), since) if traced else _pull(run, since)
    heard, next_since, resynced = await pulled
    summary.mode = "resync" if resynced else "changes" if since is not None else "first-pull"
    if resynced or since is None:  # a pull without a token lists what exists: what it lacks was deleted
        seen = {h.external_id for h in heard}
        heard += [_heard(run, Change("deleted", i), "resync") for i in sorted(_live(run) - seen)]
    return heard, next_since, resynced


@task(name="pull-changes", cache_policy=NO_CACHE, persist_result=False)
async def pull_changes(run: ImportRuntime, since: str | None) -> tuple[list[HeardChange], str | None, bool]:
    """The app's own incremental API since the stored token (an expired token: a full resync)."""
    return await _pull(run, since)


async def _pull(run: ImportRuntime, since: str | None) -> tuple[list[HeardChange], str | None, bool]:
    result = await pull_source_changes(run.connector, run.collection, since)
    source = "resync" if result.resynced else "poll"
    return [_heard(run, change, source) for change in result.changes], result.since, result.resynced


@task(name="scan-source", cache_policy=NO_CACHE, persist_result=False)
async def scan_source(run: ImportRuntime) -> list[HeardChange]:
    """Enumerate the source and keep what differs from the ledger: new or changed records, vanished ones."""
    return await _scan(run)


async def _scan(run: ImportRuntime) -> list[HeardChange]:
    scope = _scope(run)
    seen: set[str] = set()
    heard: list[HeardChange] = []
    async for page in run.connector.pages(run.collection):
        hashes: dict[str, str | None] = {}
        raws: dict[str, dict[str, Any]] = {}
        for raw in page.records:
            external_id = run.connector.record_id(run.collection, raw)
            seen.add(external_id)
            raws[external_id] = raw
            try:
                hashes[external_id] = payload_hash(run.mapper.map(raw))
            except RecordError:
                hashes[external_id] = None  # the incremental import quarantines it
        stored = await anyio.to_thread.run_sync(stored_hashes, run.engine, scope, list(raws))
        for external_id, raw in raws.items():
            if hashes[external_id] is None or stored.get(external_id) != hashes[external_id]:
                heard.append(_heard(run, Change("upsert", external_id, raw), "poll"))
    vanished = sorted(_live(run) - seen)
    return heard + [_heard(run, Change("deleted", i), "poll") for i in vanished]


def _guard(
    run: ImportRuntime, heard: list[HeardChange], deletions: list[HeardChange], summary: PollSummary, force: bool
) -> list[HeardChange]:
    """Drop the deletions of an enumeration that looks short, and say so."""
    live = len(_live(run))
    share = run.settings.max_delete_share
    if force or not live or len(deletions) <= share * live:
        return heard
    summary.delete_guard = (
        f"refused to delete {len(deletions)} of {live} live records ({len(deletions) / live:.0%} > {share:.0%}): "
        "the enumeration looks short. Check the source, then poll with force_delete."
    )
    get_run_logger().warning(summary.delete_guard)
    return [h for h in heard if h.kind != "deleted"]


def _store(run: ImportRuntime, heard: list[HeardChange], since: str | None, resynced: bool) -> int:
    if heard:
        return inbox.add(run.engine, heard, since=since, resynced=resynced)
    if since is not None:
        inbox.save_since(run.engine, run.job.connection, run.data_source, since, resynced)
    return 0


def _heard(run: ImportRuntime, change: Change, source: str) -> HeardChange:
    return HeardChange(
        tenant_id=run.job.tenant,
        connection_id=run.job.connection,
        data_source=run.data_source,
        external_id=change.external_id,
        kind=change.kind,
        source=source,
        record=change.record,
        occurred_at=change.updated_at,
    )


def _scope(run: ImportRuntime) -> PageScope:
    return PageScope(run.job.tenant, run.job.connection, run.data_source, "poll", str(flow_run.id or "local"))


def _live(run: ImportRuntime) -> set[str]:
    return live_ids(run.engine, _scope(run))
