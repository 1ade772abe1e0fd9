"""The outbox: events are written in the transaction of the page (or batch of changes) that produced them,
and wait there, in id order per connection, until the team's app answers 2xx; a 4xx parks them as dead letters.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection as DBConnection
from sqlalchemy import Engine, bindparam, delete, func, insert, or_, select, update

from inlet.store.engine import bind_value, execute_rows
from inlet.store.scope import PageScope
from inlet.store.tables import OutboxEvent, utcnow

__all__ = [
    "Claim",
    "OutboxCounts",
    "OutboxEntry",
    "PendingEvent",
    "ack",
    "claim_batch",
    "claimant",
    "counts",
    "entries",
    "defer",
    "due_connections",
    "held_by_dead",
    "idempotency_key",
    "leads",
    "NewEvent",
    "next_attempt",
    "park",
    "park_records",
    "pending_batch",
    "purge",
    "release",
    "renew",
    "replay",
    "write_events",
]

_outbox = OutboxEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
_RELEASED: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
_INSERT = insert(_outbox)  # built once, so execute_rows compiles it once per process


class PendingEvent(NamedTuple):
    """One pending event as a drain sends it (a named tuple: a thousand are made per batch, ten times cheaper than
    a frozen dataclass)."""

    id: int
    event_id: str
    tenant_id: str
    connection_id: str
    data_source: str
    external_id: str
    type: str
    record: str | None
    source_updated_at: str | None
    idempotency_key: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class OutboxCounts:
    pending: int
    dead: int
    oldest_pending: datetime | None
    deferred: int = 0  # of the pending: waiting for their next attempt


def idempotency_key(scope: PageScope, external_id: str, version: int) -> str:
    """The same for every retry or replay of one change of one record; a new change version, a new key."""
    digest = _scope_digest(scope.tenant_id, scope.connection_id, scope.data_source).copy()
    digest.update(f"{external_id}\x1f{version}".encode())
    return digest.hexdigest()[:40]


@lru_cache(maxsize=64)
def _scope_digest(tenant_id: str, connection_id: str, data_source: str) -> hashlib._Hash:
    """SHA-256 fed with the scope's part of the key material (copied per key, as if fed in one go)."""
    return hashlib.sha256(f"{tenant_id}\x1f{connection_id}\x1f{data_source}\x1f".encode())


class NewEvent(NamedTuple):
    """One change to write to the outbox: `type` is created, updated or deleted; `record` the mapped record as JSON
    (None for deleted), `version` the ledger's change version of the record."""

    external_id: str
    type: str
    version: int
    record: str | None = None
    source_updated_at: str | None = None


@dataclass
class Claim:
    """Events written already claimed by the drain `owner`, which takes them from memory (`written`, in id order)
    instead of reading them back: the full import's sender. Until its lease lapses no other drain sends them."""

    owner: str
    lease_seconds: float
    written: list[PendingEvent] = field(default_factory=list)


# The columns a new event sets, in the table's order (the others start NULL): rows are built as tuples in this order.
_COLUMNS = (
    "event_id",
    "tenant_id",
    "connection_id",
    "data_source",
    "external_id",
    "type",
    "record",
    "source_updated_at",
    "idempotency_key",
    "version",
    "status",
    "attempts",
    "created_at",
    "claimed_by",
    "claimed_until",
)


def write_events(db: DBConnection, scope: PageScope, events: Sequence[NewEvent], claim: Claim | None = None) -> None:
    """Add events inside the caller's transaction (the ledger's page or batch of changes); with a `claim`, claimed
    by its owner, and appended to `claim.written` with their ids.

    A page writes a thousand events: each becomes one tuple in column order, with its idempotency key from the
    scope's digest (no dict per event; the driver binds the tuples as they are)."""
    if not events:
        return
    now = utcnow()
    created = bind_value(db, _outbox.c.created_at, now)
    owner = until = None
    if claim is not None:
        owner = claim.owner
        until = bind_value(db, _outbox.c.claimed_until, now + timedelta(seconds=claim.lease_seconds))
    tenant, connection, source = scope.tenant_id, scope.connection_id, scope.data_source
    digest = _scope_digest(tenant, connection, source)
    rows = []
    for external_id, kind, version, record, updated_at in events:
        key = digest.copy()
        key.update(f"{external_id}\x1f{version}".encode())
        idempotency = key.hexdigest()[:40]
        rows.append(
            (
                f"evt_{idempotency[:26]}",
                tenant,
                connection,
                source,
                external_id,
                kind,
                None if kind == "deleted" else record,
                updated_at,
                idempotency,
                version,
                "pending",
                0,
                created,
                owner,
                until,
            )
        )
    if claim is None:
        execute_rows(db, _INSERT, _COLUMNS, rows)
        return
    floor = db.execute(_NEWEST).scalar_one()
    execute_rows(db, _INSERT, _COLUMNS, rows)
    # The rows just written, in id order (= the order written): the newest ids claimed by this owner. SQLite gives
    # them consecutive ids (the write lock is held); otherwise they are read one by one.
    low, high, count = db.execute(_SPAN, {"floor": floor, "owner": owner}).one()
    ids: Sequence[int] = range(low, high + 1) if count == len(rows) and high - low + 1 == count else []
    if not ids:
        ids = db.execute(_MINE.order_by(_outbox.c.id), {"floor": floor, "owner": owner}).scalars().all()
    if len(ids) != len(rows):
        raise RuntimeError(f"wrote {len(rows)} outbox events but found {len(ids)} claimed by {owner}")
    claim.written.extend(PendingEvent(i, *row[:9], 0, now) for i, row in zip(ids, rows, strict=True))


_NEWEST = select(func.coalesce(func.max(_outbox.c.id), 0))
_MINE = select(_outbox.c.id).where(_outbox.c.id > bindparam("floor"), _outbox.c.claimed_by == bindparam("owner"))
_SPAN = select(func.min(_outbox.c.id), func.max(_outbox.c.id), func.count()).where(
    _outbox.c.id > bindparam("floor"), _outbox.c.claimed_by == bindparam("owner")
)
_UP_TO = select(func.min(_outbox.c.id), func.count()).where(
    _outbox.c.connection_id == bindparam("c"), _outbox.c.status == "pending", _outbox.c.id <= bindparam("last")
)


def leads(engine: Engine, events: Sequence[PendingEvent]) -> bool:
    """Whether `events` (id order) are exactly the oldest pending events of their connection, none due later:
    a batch taken from memory may go only when nothing of the connection waits before it or between its rows."""
    first, last = events[0], events[-1]
    with engine.connect() as db:
        oldest, count = db.execute(_UP_TO, {"c": first.connection_id, "last": last.id}).one()
    return bool(oldest == first.id and count == len(events))


def pending_batch(engine: Engine, connection_id: str, limit: int, *, now: datetime | None = None) -> list[PendingEvent]:
    """The oldest pending events of one connection (one data source per batch), due now, in id order."""
    due = or_(_outbox.c.next_attempt_at.is_(None), _outbox.c.next_attempt_at <= (now or utcnow()))
    with engine.connect() as db:
        first = db.execute(
            select(_outbox.c.id, _outbox.c.data_source)
            .where(_outbox.c.connection_id == connection_id, _outbox.c.status == "pending")
            .order_by(_outbox.c.id)
            .limit(1)
        ).first()
        if first is None:
            return []
        rows = db.execute(
            select(*(_outbox.c[name] for name in PendingEvent._fields))
            .where(
                _outbox.c.connection_id == connection_id,
                _outbox.c.status == "pending",
                _outbox.c.data_source == first.data_source,
                due,
            )
            .order_by(_outbox.c.id)
            .limit(limit)
        ).all()
    # The oldest event is not due yet: nothing may overtake it.
    if rows and rows[0].id != first.id:
        return []
    return [PendingEvent(**row._mapping) for row in rows]


def claimant() -> str:
    """A new drain's name in the claims it takes: host, process and a token of its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _gone(owner: str) -> bool:
    """The claim's drain was a process of this host that no longer runs (killed): its claim is void at once."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim_batch(
    engine: Engine, connection_id: str, limit: int, owner: str, lease_seconds: float, *, now: datetime | None = None
) -> list[PendingEvent] | None:
    """Claim the oldest pending events of one connection for the drain `owner`, as `pending_batch` picks them.

    One sender per row, and so one per connection at a time: a batch always starts at the connection's oldest
    pending event, and while another drain's claim on it holds (until its lease lapses, or at once when its
    process on this host is gone) this returns None: that drain is sending, the caller may wait or leave.
    [] when nothing is due. The claim is taken by one conditional UPDATE: of two drains racing for the same
    rows, one gets them all and the other None.
    """
    now = now or utcnow()
    due = or_(_outbox.c.next_attempt_at.is_(None), _outbox.c.next_attempt_at <= now)
    with engine.connect() as db:
        first = db.execute(
            select(_outbox.c.id, _outbox.c.data_source, _outbox.c.claimed_by, _outbox.c.claimed_until)
            .where(_outbox.c.connection_id == connection_id, _outbox.c.status == "pending")
            .order_by(_outbox.c.id)
            .limit(1)
        ).first()
        if first is None:
            return []
        stale: str | None = None
        if first.claimed_by not in (None, owner) and first.claimed_until is not None:
            if _aware(first.claimed_until) > now and not _gone(first.claimed_by):
                return None
            stale = first.claimed_by
        rows = db.execute(
            select(*(_outbox.c[name] for name in PendingEvent._fields), _outbox.c.claimed_by)
            .where(
                _outbox.c.connection_id == connection_id,
                _outbox.c.status == "pending",
                _outbox.c.data_source == first.data_source,
                due,
            )
            .order_by(_outbox.c.id)
            .limit(limit)
        ).all()
    if not rows or rows[0].id != first.id:  # the oldest event is not due yet: nothing may overtake it
        return []
    free = (None, owner, stale)
    taken = _prefix(rows, lambda row: row.claimed_by in free)
    if not taken:  # another drain claimed the oldest event between the two reads
        return None
    free_now = or_(
        _outbox.c.claimed_by.is_(None),
        _outbox.c.claimed_by.in_([name for name in free if name]),
        _outbox.c.claimed_until <= now,
    )
    # By id range, not a list of a thousand ids: every row in it that passes the batch's filter is in `taken`
    # (a prefix of the filter's rows in id order), so the count tells whether the claim got exactly those.
    with engine.begin() as db:
        claimed = db.execute(
            update(_outbox)
            .where(
                _outbox.c.connection_id == connection_id,
                _outbox.c.id.between(taken[0].id, taken[-1].id),
                _outbox.c.status == "pending",
                _outbox.c.data_source == first.data_source,
                due,
                free_now,
            )
            .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease_seconds))
        ).rowcount
        if claimed != len(taken):  # another drain took or acknowledged some since the read, or wrote into the range
            db.rollback()
            return None
    return [PendingEvent(*row[:-1]) for row in taken]  # the columns in the dataclass's order, then claimed_by


def renew(engine: Engine, ids: list[int], owner: str, lease_seconds: float) -> int:
    """Extend `owner`'s claim on these events (before another try of a slow batch); how many it still held."""
    with engine.begin() as db:
        held: int = db.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(ids), _outbox.c.claimed_by == owner)
            .values(claimed_until=utcnow() + timedelta(seconds=lease_seconds))
        ).rowcount
    return held


def release(engine: Engine, connection_id: str, owner: str) -> int:
    """Free the connection's pending events `owner` still claims (its drain is over: a full import's sender that
    stopped early leaves the rest of the run's events claimed by their write); how many it held."""
    held = (_outbox.c.connection_id == connection_id, _outbox.c.status == "pending", _outbox.c.claimed_by == owner)
    with engine.begin() as db:
        freed: int = db.execute(update(_outbox).where(*held).values(**_RELEASED)).rowcount
    return freed


def _prefix(rows: Sequence[Any], keep: Callable[[Any], bool]) -> list[Any]:
    """The leading rows that `keep` accepts: a row claimed by another drain ends the batch (order holds)."""
    out = []
    for row in rows:
        if not keep(row):
            break
        out.append(row)
    return out


def _aware(when: datetime) -> datetime:
    """SQLite hands datetimes back naive (they were stored in UTC)."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def next_attempt(engine: Engine, connection_id: str, *, now: datetime | None = None) -> datetime | None:
    """When the earliest deferred event of a connection is due; None when no pending event waits."""
    with engine.connect() as db:
        when: datetime | None = db.execute(
            select(func.min(_outbox.c.next_attempt_at)).where(
                _outbox.c.connection_id == connection_id,
                _outbox.c.status == "pending",
                _outbox.c.next_attempt_at > (now or utcnow()),
            )
        ).scalar_one()
    return when


def ack(engine: Engine, ids: list[int], owner: str | None = None) -> None:
    """The app took these events: they leave the outbox.

    With the `owner` whose claim they are under, by id range (what a drain acknowledges is a run of its claimed
    batch; the released rows in the range are dead letters), checked by count, else by the list of ids.
    """
    with engine.begin() as db:
        if owner is not None and ids:
            gone = db.execute(
                delete(_outbox).where(
                    _outbox.c.id.between(min(ids), max(ids)),
                    _outbox.c.claimed_by == owner,
                    _outbox.c.status == "pending",
                )
            ).rowcount
            if gone == len(ids):
                return
            db.rollback()
    with engine.begin() as db:
        db.execute(delete(_outbox).where(_outbox.c.id.in_(ids)))


def park(engine: Engine, ids: list[int], error: str) -> None:
    """The app rejected these events (4xx): keep them as dead letters with its answer."""
    with engine.begin() as db:
        db.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(ids))
            .values(
                status="dead", attempts=_outbox.c.attempts + 1, last_error=error[:4000], dead_at=utcnow(), **_RELEASED
            )
        )


def park_records(engine: Engine, events: list[PendingEvent], error: str) -> set[int]:
    """Park these events, and every later pending event of the same records, so that a replay keeps their order.

    Returns the ids of all the events parked.
    """
    ids = {e.id for e in events}
    with engine.begin() as db:
        for e in events:
            followers = db.execute(
                select(_outbox.c.id).where(
                    _outbox.c.connection_id == e.connection_id,
                    _outbox.c.data_source == e.data_source,
                    _outbox.c.external_id == e.external_id,
                    _outbox.c.status == "pending",
                    _outbox.c.id > e.id,
                )
            ).scalars()
            ids.update(followers)
        now = utcnow()
        held = f"held behind a dead letter of the same record: {error}"
        db.execute(
            update(_outbox)
            .where(_outbox.c.id.in_([e.id for e in events]))
            .values(status="dead", attempts=_outbox.c.attempts + 1, last_error=error[:4000], dead_at=now, **_RELEASED)
        )
        db.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(ids - {e.id for e in events}), _outbox.c.status == "pending")
            .values(status="dead", last_error=held[:4000], dead_at=now, **_RELEASED)
        )
    return ids


def defer(engine: Engine, ids: list[int], error: str, *, next_attempt_at: datetime | None) -> None:
    """The app could not take these events now: count the attempt and keep them pending."""
    with engine.begin() as db:
        db.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(ids))
            .values(
                attempts=_outbox.c.attempts + 1,
                last_error=error[:4000],
                next_attempt_at=next_attempt_at,
                **_RELEASED,
            )
        )


def counts(engine: Engine, connection_id: str | None = None) -> OutboxCounts:
    """Pending and dead events, and the age of the oldest pending one."""
    scope = [_outbox.c.connection_id == connection_id] if connection_id else []
    with engine.connect() as db:
        rows: dict[str, int] = dict(
            db.execute(select(_outbox.c.status, func.count()).where(*scope).group_by(_outbox.c.status)).tuples().all()
        )
        oldest = db.execute(
            select(func.min(_outbox.c.created_at)).where(*scope, _outbox.c.status == "pending")
        ).scalar_one()
        deferred = db.execute(
            select(func.count()).where(*scope, _outbox.c.status == "pending", _outbox.c.next_attempt_at > utcnow())
        ).scalar_one()
    return OutboxCounts(rows.get("pending", 0), rows.get("dead", 0), oldest, deferred)


def due_connections(engine: Engine, tenant_id: str | None = None) -> list[tuple[str, str]]:
    """(tenant, connection) of every connection with a pending event due now (its oldest may still wait)."""
    scope = [_outbox.c.tenant_id == tenant_id] if tenant_id else []
    with engine.connect() as db:
        rows = db.execute(
            select(_outbox.c.tenant_id, _outbox.c.connection_id)
            .where(
                *scope,
                _outbox.c.status == "pending",
                or_(_outbox.c.next_attempt_at.is_(None), _outbox.c.next_attempt_at <= utcnow()),
            )
            .group_by(_outbox.c.tenant_id, _outbox.c.connection_id)
            .order_by(_outbox.c.tenant_id, _outbox.c.connection_id)
        ).all()
    return [(t, c) for t, c in rows]


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    tenant_id: str
    connection_id: str
    external_id: str
    type: str
    attempts: int
    next_attempt_at: datetime | None
    dead_at: datetime | None
    last_error: str | None


def entries(
    engine: Engine, status: str, tenant_id: str | None = None, limit: int = 100, after: int | None = None
) -> list[OutboxEntry]:
    """The oldest pending events or dead letters (after row id `after`), with the app's last answer."""
    scope = [_outbox.c.tenant_id == tenant_id] if tenant_id else []
    scope += [_outbox.c.id > after] if after is not None else []
    with engine.connect() as db:
        rows = db.execute(
            select(*(_outbox.c[name] for name in OutboxEntry.__dataclass_fields__))
            .where(*scope, _outbox.c.status == status)
            .order_by(_outbox.c.id)
            .limit(limit)
        ).all()
    return [OutboxEntry(**row._mapping) for row in rows]


def replay(engine: Engine, *, ids: list[int] | None = None, tenant_id: str | None = None) -> int:
    """Make dead letters pending again, due now, with fresh attempt counts; they keep their place (id order).

    No filter: every dead letter. Returns how many were replayed.
    """
    scope = []
    if ids is not None:
        scope.append(_outbox.c.id.in_(ids))
    if tenant_id is not None:
        scope.append(_outbox.c.tenant_id == tenant_id)
    with engine.begin() as db:
        replayed: int = db.execute(
            update(_outbox)
            .where(*scope, _outbox.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=None, dead_at=None, **_RELEASED)
        ).rowcount
    return replayed


def purge(engine: Engine, older_than: datetime) -> int:
    """Delete dead letters that died before `older_than`; returns how many."""
    with engine.begin() as db:
        purged: int = db.execute(
            delete(_outbox).where(_outbox.c.status == "dead", _outbox.c.dead_at < older_than)
        ).rowcount
    return purged


def held_by_dead(engine: Engine, events: list[PendingEvent]) -> list[PendingEvent]:
    """The events whose record has an older dead letter: sending them first would reorder the record."""
    first = events[0]
    with engine.connect() as db:
        dead_here = (_outbox.c.connection_id == first.connection_id, _outbox.c.status == "dead")
        if db.execute(select(_outbox.c.id).where(*dead_here).limit(1)).first() is None:
            return []  # the common case: one indexed probe, no list of a thousand ids
        dead = db.execute(
            select(_outbox.c.data_source, _outbox.c.external_id, func.min(_outbox.c.id))
            .where(
                _outbox.c.connection_id == first.connection_id,
                _outbox.c.status == "dead",
                _outbox.c.external_id.in_(sorted({e.external_id for e in events})),
            )
            .group_by(_outbox.c.data_source, _outbox.c.external_id)
        ).all()
    oldest_dead = {(source, external_id): min_id for source, external_id, min_id in dead}
    return [e for e in events if oldest_dead.get((e.data_source, e.external_id), e.id) < e.id]
