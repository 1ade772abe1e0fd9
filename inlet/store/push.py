"""The push side of the store: the push outbox (durable before the app is answered, drained in id order per
record), data links (app id <-> external id per connection) and the writes inlet made, kept for a window so
that their echoes are recognised when the import path hears them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection as DBConnection
from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from inlet.store.push_tables import DataLink, PushEcho, PushEvent, PushStat
from inlet.store.tables import LedgerEntry, utcnow

__all__ = [
    "Link",
    "PushChange",
    "PushCounts",
    "PushRow",
    "WrittenRecord",
    "begin_create",
    "dead_pushes",
    "enqueue",
    "finish_write",
    "forget_echoes",
    "link_by_external",
    "link_for",
    "last_imported_at",
    "linked_app_ids",
    "push_counts",
    "push_stats",
    "bump_in",
    "bump_stats",
    "defer_push",
    "park_push",
    "pending_pushes",
    "push_connections",
    "push_key",
    "replay_pushes",
    "value_hash",
]

_push = PushEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
_link = DataLink.__table__  # type: ignore[attr-defined]
_echo = PushEcho.__table__  # type: ignore[attr-defined]
_stat = PushStat.__table__  # type: ignore[attr-defined]
_ledger = LedgerEntry.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PushChange:
    """One change of one app record, for one connection, as the app pushed it (already checked)."""

    tenant_id: str
    connection_id: str
    data_source: str
    app_id: str
    type: str
    record: Mapping[str, Any] | None
    change_id: str
    occurred_at: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class PushRow:
    id: int
    tenant_id: str
    connection_id: str
    data_source: str
    app_id: str
    external_id: str | None
    type: str
    record: str | None
    occurred_at: str | None
    idempotency_key: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Link:
    app_id: str
    external_id: str | None
    origin: str
    create_key: str | None
    etag: str | None
    external_modified_at: str | None
    synced_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class WrittenRecord:
    """What one write did, committed with the acknowledgement of its push row."""

    external_id: str
    kind: str
    field_hashes: dict[str, str]
    etag: str | None
    modified_at: str | None
    origin: str = "push"


@dataclass(frozen=True)
class PushCounts:
    pending: int
    dead: int
    deferred: int
    oldest_pending: datetime | None


def push_key(connection_id: str, data_source: str, app_id: str, change_id: str) -> str:
    """The idempotency key of one pushed change: a resent push maps to the same key, and the write to the
    external app carries it, so neither a resend nor a retry makes a second record."""
    text = f"{connection_id}\x1f{data_source}\x1f{app_id}\x1f{change_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def value_hash(value: Any) -> str:
    """The hash of one written field's value, as the echo check compares it."""
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


def enqueue(engine: Engine, changes: Sequence[PushChange]) -> list[tuple[int, bool]]:
    """Make the changes durable, in order; a change already queued (same key) is not added twice.

    Returns (row id, new) per change. Committed before the caller answers the app."""
    out: list[tuple[int, bool]] = []
    with engine.begin() as db:
        for change in changes:
            key = push_key(change.connection_id, change.data_source, change.app_id, change.change_id)
            existing = db.execute(
                select(_push.c.id).where(_push.c.connection_id == change.connection_id, _push.c.idempotency_key == key)
            ).scalar()
            if existing is not None:
                out.append((existing, False))
                continue
            row = db.execute(
                insert(_push).values(
                    tenant_id=change.tenant_id,
                    connection_id=change.connection_id,
                    data_source=change.data_source,
                    app_id=change.app_id,
                    external_id=change.external_id,
                    type=change.type,
                    record=orjson.dumps(change.record).decode() if change.record is not None else None,
                    occurred_at=change.occurred_at,
                    idempotency_key=key,
                    status="pending",
                    attempts=0,
                    created_at=utcnow(),
                )
            )
            key_values = row.inserted_primary_key
            assert key_values is not None
            out.append((int(key_values[0]), True))
    return out


def pending_pushes(engine: Engine, connection_id: str, limit: int, *, now: datetime | None = None) -> list[PushRow]:
    """The oldest pending pushes of one connection that may go now: a record whose older push waits (deferred)
    or is a dead letter holds back its later ones, so one record's writes never overtake each other."""
    now = now or utcnow()
    with engine.connect() as db:
        dead = set(
            db.execute(
                select(_push.c.app_id).where(_push.c.connection_id == connection_id, _push.c.status == "dead")
            ).scalars()
        )
        rows = db.execute(
            select(*(_push.c[name] for name in PushRow.__dataclass_fields__), _push.c.next_attempt_at)
            .where(_push.c.connection_id == connection_id, _push.c.status == "pending")
            .order_by(_push.c.id)
            .limit(limit * 4)
        ).all()
    blocked = set(dead)
    out: list[PushRow] = []
    for row in rows:
        values = dict(row._mapping)
        due_at = values.pop("next_attempt_at")
        key = (values["data_source"], values["app_id"])
        if key[1] in blocked or key in blocked:
            continue
        if due_at is not None and _aware(due_at) > now:
            blocked.add(key)
            continue
        blocked.add(key)  # one push per record per batch: the next waits for this one's outcome
        out.append(PushRow(**values))
        if len(out) >= limit:
            break
    return out


def push_connections(engine: Engine, tenant_id: str | None = None) -> list[tuple[str, str]]:
    """(tenant, connection) of every connection with a pending push due now."""
    scope = [_push.c.tenant_id == tenant_id] if tenant_id else []
    due = or_(_push.c.next_attempt_at.is_(None), _push.c.next_attempt_at <= utcnow())
    with engine.connect() as db:
        rows = db.execute(
            select(_push.c.tenant_id, _push.c.connection_id)
            .where(*scope, _push.c.status == "pending", due)
            .group_by(_push.c.tenant_id, _push.c.connection_id)
            .order_by(_push.c.tenant_id, _push.c.connection_id)
        ).all()
    return [(row.tenant_id, row.connection_id) for row in rows]


def defer_push(engine: Engine, push_id: int, error: str, *, next_attempt_at: datetime | None) -> None:
    with engine.begin() as db:
        db.execute(
            update(_push)
            .where(_push.c.id == push_id)
            .values(attempts=_push.c.attempts + 1, last_error=error[:4000], next_attempt_at=next_attempt_at)
        )


def park_push(engine: Engine, push_id: int, error: str) -> None:
    """The external app refused this write: keep it as a dead letter (it holds back its record's later pushes)."""
    with engine.begin() as db:
        db.execute(
            update(_push)
            .where(_push.c.id == push_id)
            .values(status="dead", attempts=_push.c.attempts + 1, last_error=error[:4000], dead_at=utcnow())
        )


def replay_pushes(engine: Engine, *, ids: Sequence[int] | None = None, tenant_id: str | None = None) -> int:
    """Dead letters back to pending, keeping their place (their id) in the order."""
    where = [_push.c.status == "dead"]
    if ids is not None:
        where.append(_push.c.id.in_(list(ids)))
    if tenant_id is not None:
        where.append(_push.c.tenant_id == tenant_id)
    with engine.begin() as db:
        replayed: int = db.execute(
            update(_push).where(*where).values(status="pending", next_attempt_at=None, dead_at=None)
        ).rowcount
    return replayed


def dead_pushes(engine: Engine, tenant_id: str | None = None) -> list[dict[str, Any]]:
    scope = [_push.c.tenant_id == tenant_id] if tenant_id else []
    with engine.connect() as db:
        rows = db.execute(
            select(
                _push.c.id,
                _push.c.tenant_id,
                _push.c.connection_id,
                _push.c.app_id,
                _push.c.type,
                _push.c.attempts,
                _push.c.last_error,
            )
            .where(*scope, _push.c.status == "dead")
            .order_by(_push.c.id)
        ).all()
    return [dict(row._mapping) for row in rows]


def push_counts(engine: Engine, connection_id: str | None = None) -> PushCounts:
    scope = [_push.c.connection_id == connection_id] if connection_id else []
    with engine.connect() as db:
        by_status: dict[str, int] = dict(
            db.execute(select(_push.c.status, func.count()).where(*scope).group_by(_push.c.status)).tuples().all()
        )
        deferred = db.execute(
            select(func.count()).where(*scope, _push.c.status == "pending", _push.c.next_attempt_at > utcnow())
        ).scalar_one()
        oldest = db.execute(select(func.min(_push.c.created_at)).where(*scope, _push.c.status == "pending")).scalar()
    return PushCounts(by_status.get("pending", 0), by_status.get("dead", 0), deferred, oldest)


def link_for(engine: Engine, connection_id: str, data_source: str, app_id: str) -> Link | None:
    return links_for(engine, connection_id, data_source, [app_id]).get(app_id)


def links_for(engine: Engine, connection_id: str, data_source: str, app_ids: Sequence[str]) -> dict[str, Link]:
    """App id -> link, for the linked ones among `app_ids` (one query: a drain's batch)."""
    if not app_ids:
        return {}
    with engine.connect() as db:
        rows = db.execute(
            select(*(_link.c[name] for name in Link.__dataclass_fields__)).where(
                _link.c.connection_id == connection_id,
                _link.c.data_source == data_source,
                _link.c.app_id.in_(list(dict.fromkeys(app_ids))),
            )
        ).all()
    return {row.app_id: Link(**row._mapping) for row in rows}


def link_by_external(engine: Engine, connection_id: str, data_source: str, external_id: str) -> Link | None:
    with engine.connect() as db:
        row = db.execute(
            select(*(_link.c[name] for name in Link.__dataclass_fields__)).where(
                _link.c.connection_id == connection_id,
                _link.c.data_source == data_source,
                _link.c.external_id == external_id,
            )
        ).first()
    return Link(**row._mapping) if row else None


def linked_app_ids(engine: Engine, connection_id: str, data_source: str, external_ids: Sequence[str]) -> dict[str, str]:
    """External id -> app id of the linked records among `external_ids`, so a delivery can name the app's record."""
    if not external_ids:
        return {}
    scope = (_link.c.connection_id == connection_id, _link.c.data_source == data_source, _link.c.deleted_at.is_(None))
    with engine.connect() as db:
        if db.execute(select(_link.c.app_id).where(*scope).limit(1)).first() is None:
            return {}  # the common case: a connection nobody pushes to
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(external_ids))
        for start in range(0, len(ids), 500):
            rows = db.execute(
                select(_link.c.external_id, _link.c.app_id).where(
                    *scope, _link.c.external_id.in_(ids[start : start + 500])
                )
            )
            found.update({row.external_id: row.app_id for row in rows})
    return found


def last_imported_at(engine: Engine, connection_id: str, data_source: str, external_id: str) -> str | None:
    """The external record's modified time as inlet last imported (and delivered) it."""
    return imported_stamps(engine, connection_id, data_source, [external_id]).get(external_id)


def imported_stamps(
    engine: Engine, connection_id: str, data_source: str, external_ids: Sequence[str]
) -> dict[str, str | None]:
    """External id -> its modified time as inlet last imported it, for the imported ones (one query)."""
    if not external_ids:
        return {}
    with engine.connect() as db:
        rows = db.execute(
            select(_ledger.c.external_id, _ledger.c.source_updated_at).where(
                _ledger.c.connection_id == connection_id,
                _ledger.c.data_source == data_source,
                _ledger.c.external_id.in_(list(dict.fromkeys(external_ids))),
            )
        ).all()
    return {row.external_id: row.source_updated_at for row in rows}


def begin_create(engine: Engine, connection_id: str, data_source: str, app_id: str, create_key: str) -> bool:
    """Record that a create is about to be sent, before it is sent. Returns True when an earlier attempt of
    this create may have reached the app (its outcome was never recorded): look the record up first."""
    with engine.begin() as db:
        row = db.execute(
            select(_link.c.create_key, _link.c.external_id).where(
                _link.c.connection_id == connection_id, _link.c.data_source == data_source, _link.c.app_id == app_id
            )
        ).first()
        if row is None:
            now = utcnow()
            db.execute(
                insert(_link).values(
                    connection_id=connection_id,
                    data_source=data_source,
                    app_id=app_id,
                    external_id=None,
                    origin="push",
                    create_key=create_key,
                    created_at=now,
                    updated_at=now,
                )
            )
            return False
        if row.create_key is None:
            db.execute(
                update(_link)
                .where(
                    _link.c.connection_id == connection_id,
                    _link.c.data_source == data_source,
                    _link.c.app_id == app_id,
                )
                .values(create_key=create_key, updated_at=utcnow())
            )
            return False
        return True


def finish_write(engine: Engine, row: PushRow, written: WrittenRecord | None, *, conflicts: int = 0) -> None:
    """In one transaction: the push leaves the outbox, the link says where the record is now, and the write is
    kept (field hashes, etag, modified time) so that its echo is recognised. `written` None: nothing to write."""
    finish_writes(engine, [(row, written, conflicts)])


def finish_writes(engine: Engine, finished: Sequence[tuple[PushRow, WrittenRecord | None, int]]) -> None:
    """`finish_write` for a batch of pushes (each: the push, what was written, its conflicts), in one
    transaction: a crash before it commits repeats the batch's writes, which find-or-create makes harmless."""
    if not finished:
        return
    now = utcnow()
    totals: dict[tuple[str, str], dict[str, int]] = {}
    with engine.begin() as db:
        for row, written, conflicts in finished:
            if written is not None:
                _save_link(db, row, written, now)
                db.execute(
                    insert(_echo).values(
                        connection_id=row.connection_id,
                        data_source=row.data_source,
                        external_id=written.external_id,
                        kind=written.kind,
                        field_hashes=written.field_hashes,
                        etag=written.etag,
                        modified_at=written.modified_at,
                        written_at=now,
                    )
                )
                if written.kind == "deleted":
                    _ledger_deleted(db, row, written.external_id, now)
            total = totals.setdefault((row.connection_id, row.data_source), {"written": 0, "conflicts": 0})
            total["written"] += int(written is not None)
            total["conflicts"] += conflicts
        db.execute(delete(_push).where(_push.c.id.in_([row.id for row, _, _ in finished])))
        for (connection_id, data_source), deltas in totals.items():
            bump_in(db, connection_id, data_source, now, **deltas)


def _save_link(db: DBConnection, row: PushRow, written: WrittenRecord, now: datetime) -> None:
    key = [_link.c.connection_id == row.connection_id, _link.c.data_source == row.data_source]
    # The external id may be linked to another app id already (the app named it, or find-or-create found it):
    # the newest link wins, one external record has one app record.
    db.execute(delete(_link).where(*key, _link.c.external_id == written.external_id, _link.c.app_id != row.app_id))
    values = {
        "external_id": written.external_id,
        "create_key": None,
        "etag": written.etag,
        "external_modified_at": written.modified_at,
        "synced_at": now,
        "deleted_at": now if written.kind == "deleted" else None,
        "updated_at": now,
    }
    updated = db.execute(update(_link).where(*key, _link.c.app_id == row.app_id).values(**values)).rowcount
    if not updated:
        db.execute(
            insert(_link).values(
                connection_id=row.connection_id,
                data_source=row.data_source,
                app_id=row.app_id,
                origin=written.origin,
                created_at=now,
                **values,
            )
        )


def _ledger_deleted(db: DBConnection, row: PushRow, external_id: str, now: datetime) -> None:
    """The app deleted the record itself: the import must not tell it so again."""
    db.execute(
        update(_ledger)
        .where(
            _ledger.c.connection_id == row.connection_id,
            _ledger.c.data_source == row.data_source,
            _ledger.c.external_id == external_id,
            _ledger.c.deleted_at.is_(None),
        )
        .values(version=_ledger.c.version + 1, deleted_at=now)
    )


def bump_stats(engine: Engine, connection_id: str, data_source: str, **deltas: int) -> None:
    with engine.begin() as db:
        bump_in(db, connection_id, data_source, utcnow(), **deltas)


def bump_in(db: DBConnection, connection_id: str, data_source: str, now: datetime, **deltas: int) -> None:
    key = [_stat.c.connection_id == connection_id, _stat.c.data_source == data_source]
    values: dict[str, Any] = {name: _stat.c[name] + delta for name, delta in deltas.items() if delta}
    if deltas.get("written") or deltas.get("failed"):
        values["last_push_at"] = now
    if not values:
        return
    if db.execute(update(_stat).where(*key).values(**values)).rowcount:
        return
    try:
        with db.begin_nested():
            db.execute(
                insert(_stat).values(
                    connection_id=connection_id,
                    data_source=data_source,
                    written=0,
                    failed=0,
                    conflicts=0,
                    echo_suppressed=0,
                    dropped_fields=0,
                    extra={},
                )
            )
    except IntegrityError:
        pass  # another transaction added it first
    db.execute(update(_stat).where(*key).values(**values))


def push_stats(engine: Engine, connection_id: str | None = None) -> list[PushStat]:
    scope = [_stat.c.connection_id == connection_id] if connection_id else []
    with engine.connect() as db:
        rows = db.execute(select(_stat).where(*scope).order_by(_stat.c.connection_id)).all()
    return [PushStat(**row._mapping) for row in rows]


def forget_echoes(engine: Engine, older_than: datetime) -> int:
    with engine.begin() as db:
        gone: int = db.execute(delete(_echo).where(_echo.c.written_at < older_than)).rowcount
    return gone


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
