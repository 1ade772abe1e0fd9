"""Drain one connection's push outbox into its external app: reverse-map, link, resolve conflicts, write.

For each pushed change, in id order per record (a deferred or dead push holds back its record's later ones):

* created: `begin_create` records the intent (with the push's idempotency key) before anything is sent. The
  record is then looked up (`find_existing`: find-or-create) so that neither a record the app already has nor
  a create whose answer was lost becomes a duplicate; found -> linked and updated, else created with the key.
* updated: the link gives the external id (a change naming an `external_id` inlet delivered links it). When
  the connector can read the record, its current state decides conflicts (inlet.push.conflicts); the write
  carries the etag. No link yet: find-or-create, as for a create.
* deleted: the linked record is deleted; the ledger marks it deleted in the same transaction, so the import
  never tells the app about a deletion it made.

A batch's links and import stamps are read in one go before its writes, and each write's outcome, link and
field hashes commit with the push's acknowledgement, the whole batch in one transaction (`finish_writes`): a
crash before that commit repeats the batch's writes, which the idempotency key, the look-up or the etag makes
harmless. Failures follow the delivery policy: 429/503 and 5xx defer the push (Retry-After honoured, else
backoff with full jitter up to the cap) and feed the breaker of the connection's app; a refused write (4xx)
becomes a dead letter; a push older than `max_age_seconds` that still fails becomes one too. `inlet push
replay` sends dead letters again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import orjson

from connectors.errors import ConnectorError, RetryableError, WriteConflict, WriteRejected
from connectors.writes import WriteOp, WriteResult, find_existing, write
from inlet.delivery import breaker
from inlet.push.body import nested_body
from inlet.push.conflicts import Conflict, external_changed, latest, resolve
from inlet.push.reverse import Reversed
from inlet.push.runtime import PushRuntime
from inlet.store import (
    Link,
    PushRow,
    WrittenRecord,
    begin_create,
    bump_stats,
    defer_push,
    finish_writes,
    imported_stamps,
    link_by_external,
    links_for,
    park_push,
    pending_pushes,
    utcnow,
    value_hash,
)
from mappings import RecordError

__all__ = ["PushResult", "drain_pushes"]

logger = logging.getLogger(__name__)


@dataclass
class PushResult:
    """What one drain of a connection's push outbox did."""

    written: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0  # became dead letters
    deferred: int = 0
    parked: bool = False  # the app's breaker is open
    conflicts: list[dict[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, other: PushResult) -> None:
        for name in ("written", "created", "updated", "deleted", "unchanged", "failed", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.parked = self.parked or other.parked
        self.conflicts += other.conflicts
        self.notices += other.notices
        self.errors += other.errors


class _Refused(Exception):
    """This push cannot be written as it is: a dead letter with this reason."""


async def drain_pushes(run: PushRuntime, *, batch_size: int = 50, clock: Callable[[], datetime] = utcnow) -> PushResult:
    """Write every due push of the connection, batch by batch, until none is due or the breaker opens."""
    result = PushResult()
    while True:
        gate, _ = await anyio.to_thread.run_sync(breaker.gate, run.engine, run.breaker_key, run.breaker_policy)
        if gate == "open":
            result.parked = True
            return result
        limit = 1 if gate == "probe" else batch_size
        rows = await anyio.to_thread.run_sync(
            partial(pending_pushes, run.engine, run.connection_id, limit, now=clock())
        )
        if not rows:
            return result
        # A batch holds one push per record, so its pushes go concurrently (up to the policy's concurrency)
        # without a record's writes overtaking each other. A deferred push is not due again in this drain:
        # the next batch skips it and its record's later pushes.
        slots = asyncio.Semaphore(1 if gate == "probe" else run.policy.concurrency)
        known = await anyio.to_thread.run_sync(_known, run, rows)
        done = await asyncio.gather(*(_in_slot(slots, _push_one(run, row, known, clock)) for row in rows))
        # The batch's outcomes, links and echo hashes commit together: one transaction, not one per push.
        await anyio.to_thread.run_sync(finish_writes, run.engine, [f for _, f in done if f is not None])
        outcomes = [outcome for outcome, _ in done]
        for outcome in outcomes:
            result.add(outcome)
        deferred = [o for o in outcomes if o.deferred]
        if deferred:
            if await _failed(run, deferred[-1].errors[-1]) is not None or gate == "probe":
                result.parked = True
                return result
        elif any(o.written or o.unchanged for o in outcomes):
            await anyio.to_thread.run_sync(breaker.record_success, run.engine, run.breaker_key)


async def _in_slot(slots: asyncio.Semaphore, push: Coroutine[Any, Any, _Done]) -> _Done:
    async with slots:
        return await push


async def _failed(run: PushRuntime, error: str) -> datetime | None:
    return await anyio.to_thread.run_sync(
        breaker.record_failure, run.engine, run.breaker_key, run.breaker_policy, error
    )


async def _push_one(run: PushRuntime, row: PushRow, known: _Known, clock: Callable[[], datetime]) -> _Done:
    """Write one push; its outcome, and what `finish_writes` commits for it (None: deferred or dead)."""
    result = PushResult()
    try:
        written, conflicts = await _write(run, row, known, result)
    except RetryableError as exc:
        return await _defer(run, row, exc, clock, result), None
    except (_Refused, WriteRejected, RecordError) as exc:
        reason = run.redact(f"{type(exc).__name__}: {exc}")
        await anyio.to_thread.run_sync(park_push, run.engine, row.id, reason)
        await anyio.to_thread.run_sync(lambda: _bump_failed(run, row))
        result.failed += 1
        result.errors.append(f"push {row.id} ({row.type} {row.app_id}): {reason}")
        return result, None
    except ConnectorError as exc:  # a fatal connector error (auth, egress): the run fails loudly
        raise exc
    result.conflicts += [c.as_dict() for c in conflicts]
    if written is None:
        result.unchanged += 1
    else:
        result.written += 1
        setattr(result, written.kind, getattr(result, written.kind) + 1)
    return result, (row, written, len(conflicts))


def _bump_failed(run: PushRuntime, row: PushRow) -> None:
    bump_stats(run.engine, row.connection_id, row.data_source, failed=1)


async def _defer(
    run: PushRuntime, row: PushRow, exc: RetryableError, clock: Callable[[], datetime], result: PushResult
) -> PushResult:
    now = clock()
    reason = run.redact(str(exc))
    if now - _aware(row.created_at) > timedelta(seconds=run.policy.max_age_seconds):
        await anyio.to_thread.run_sync(
            park_push, run.engine, row.id, f"gave up after {row.attempts + 1} attempts: {reason}"
        )
        result.failed += 1
        result.errors.append(f"push {row.id}: {reason}")
        return result
    wait = min(run.policy.retry_cap_seconds, run.policy.retry_base_seconds * 2**row.attempts)
    delay = exc.retry_after if exc.retry_after is not None else random.uniform(0, wait)  # noqa: S311  # jitter
    await anyio.to_thread.run_sync(
        lambda: defer_push(run.engine, row.id, reason, next_attempt_at=now + timedelta(seconds=delay))
    )
    result.deferred += 1
    result.errors.append(reason)
    return result


async def _write(
    run: PushRuntime, row: PushRow, known: _Known, result: PushResult
) -> tuple[WrittenRecord | None, list[Conflict]]:
    link = known.link(row)
    if row.type == "deleted":
        return await _delete(run, row, link, result), []
    record: dict[str, Any] = orjson.loads(row.record or "{}")
    reversed_ = run.reverse.reverse(record, link.external_id if link else None)
    result.notices += [f"{row.app_id}: {notice}" for notice in reversed_.notices]
    if link is not None and link.external_id and link.deleted_at is None:
        return await _update(run, row, link, known.imported.get(link.external_id), reversed_, result)
    return await _create(run, row, reversed_.fields, result), []


_Done = tuple[PushResult, tuple[PushRow, WrittenRecord | None, int] | None]


@dataclass(frozen=True)
class _Known:
    """What the store knows of a batch's records before they are written, read in one go: their links (or why
    a push cannot be linked), and the modified time inlet last imported for each linked record."""

    links: dict[int, Link | None | _Refused]  # by push id
    imported: dict[str, str | None]  # by external id

    def link(self, row: PushRow) -> Link | None:
        link = self.links[row.id]
        if isinstance(link, _Refused):
            raise link
        return link


def _known(run: PushRuntime, rows: list[PushRow]) -> _Known:
    links: dict[int, Link | None | _Refused] = {}
    imported: dict[str, str | None] = {}
    for data_source in {row.data_source for row in rows}:
        batch = [row for row in rows if row.data_source == data_source]
        stored = links_for(run.engine, run.connection_id, data_source, [row.app_id for row in batch])
        for row in batch:
            try:
                links[row.id] = _link(run, row, stored.get(row.app_id))
            except _Refused as exc:
                links[row.id] = exc
        linked = [link.external_id for row in batch if isinstance(link := links[row.id], Link) and link.external_id]
        imported |= imported_stamps(run.engine, run.connection_id, data_source, linked)
    return _Known(links, imported)


def _link(run: PushRuntime, row: PushRow, link: Link | None) -> Link | None:
    if (link is None or link.external_id is None) and row.external_id:
        named = link_by_external(run.engine, run.connection_id, row.data_source, row.external_id)
        if named is None:
            return Link(row.app_id, row.external_id, "named", None, None, None, None, None)
        if named.app_id != row.app_id:
            raise _Refused(f"external id {row.external_id} is linked to another app record ({named.app_id})")
        return named
    return link


async def _create(run: PushRuntime, row: PushRow, fields: dict[str, Any], result: PushResult) -> WrittenRecord:
    maybe_sent = await anyio.to_thread.run_sync(
        lambda: begin_create(run.engine, run.connection_id, row.data_source, row.app_id, row.idempotency_key)
    )
    body = nested_body(run.reverse.body(fields))
    # Find-or-create: a record the app already holds (or one a create of ours made before its answer was
    # lost) is linked and updated, never created twice. An app with no filter is scanned only in the second case.
    found = await find_existing(run.connector, row.data_source, body, lost_create=maybe_sent)
    if found is None:
        try:
            answer = await write(run.connector, WriteOp("create", row.data_source, None, body, row.idempotency_key))
        except WriteConflict as exc:
            if exc.existing_id is None:
                raise _Refused(str(exc)) from None
            found = exc.existing_id  # the app says the record exists already (HubSpot's 409 on a taken email)
        else:
            _note_dropped(result, row, answer)
            kind = "updated" if answer.found_existing else "created"
            return _written(
                answer, answer.external_id, kind, fields, origin="found" if answer.found_existing else "push"
            )
    current = await run.current(found)  # an app with etags takes the update only with the found record's one
    body = nested_body(run.reverse.body(fields), current)
    etag = run.etag(current) if current is not None else None
    answer = await write(run.connector, WriteOp("update", row.data_source, found, body, row.idempotency_key, etag))
    _note_dropped(result, row, answer)
    return _written(answer, found, "updated", fields, origin="found")


async def _update(
    run: PushRuntime, row: PushRow, link: Link, imported: str | None, reversed_: Reversed, result: PushResult
) -> tuple[WrittenRecord | None, list[Conflict]]:
    external_id = link.external_id or ""
    synced = latest(link.external_modified_at, imported)  # the last sync: inlet's write, or its import
    for attempt in (1, 2):
        current = await run.current(external_id)
        if current is None and run.can_read:
            raise _Refused(f"{run.app} record {external_id} no longer exists; its deletion reaches the app by import")
        fields, etag = dict(reversed_.fields), link.etag
        conflicts: list[Conflict] = []
        if current is not None:
            modified = run.connector.updated_at(run.collection, current)
            etag = run.etag(current) or etag
            if external_changed(modified, synced):
                app_at = row.occurred_at or _aware(row.created_at).isoformat()
                fields, conflicts = resolve(
                    reversed_,
                    current,
                    modified,
                    app_at,
                    run.reverse.conflicts,
                    app_id=row.app_id,
                    external_id=external_id,
                )
                if not fields:
                    return None, conflicts
        body = nested_body(run.reverse.body(fields), current)
        op = WriteOp("update", row.data_source, external_id, body, row.idempotency_key, etag)
        try:
            answer = await write(run.connector, op)
        except WriteConflict:
            if attempt == 2:
                raise RetryableError(f"{run.app}: record {external_id} keeps changing while it is written") from None
            continue  # changed between our read and our write: read it again and decide again
        except WriteRejected as exc:
            if exc.status in (404, 410):
                raise _Refused(
                    f"{run.app} record {external_id} is gone; its deletion reaches the app by import"
                ) from None
            raise
        _note_dropped(result, row, answer)
        if not answer.sent:
            return None, conflicts
        return _written(answer, external_id, "updated", fields), conflicts
    raise AssertionError("unreachable")  # pragma: no cover


async def _delete(run: PushRuntime, row: PushRow, link: Link | None, result: PushResult) -> WrittenRecord | None:
    if link is None or not link.external_id or link.deleted_at is not None:
        result.notices.append(
            f"{row.app_id}: deleted in the app, never linked to a {run.app} record: nothing to delete"
        )
        return None
    op = WriteOp("delete", row.data_source, link.external_id, {}, row.idempotency_key, link.etag)
    try:
        answer = await write(run.connector, op)
    except WriteConflict:  # a stale etag: the app deleted it, whatever changed since
        op = WriteOp("delete", row.data_source, link.external_id, {}, row.idempotency_key, None)
        answer = await write(run.connector, op)
    return _written(answer, link.external_id, "deleted", {})


def _note_dropped(result: PushResult, row: PushRow, answer: WriteResult) -> None:
    result.notices += [f"{row.app_id}: field {name!r} cannot be written; dropped" for name in answer.dropped]


def _written(
    answer: WriteResult, external_id: str | None, kind: str, fields: dict[str, Any], origin: str = "push"
) -> WrittenRecord:
    return WrittenRecord(
        external_id=answer.external_id or external_id or "",
        kind=kind,
        field_hashes={path: value_hash(value) for path, value in fields.items()},
        etag=answer.etag,
        modified_at=answer.modified_at,
        origin=origin,
    )


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
