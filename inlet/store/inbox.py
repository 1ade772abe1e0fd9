"""The inbox: changes heard from webhooks and polls, durable before anyone is told about them.

A webhook's events are written before the receiver answers 2xx; a poll's events and its new watermark
commit in one transaction. The incremental import removes inbox rows in the same transaction that puts
their outcome in the ledger and outbox, so a change is never lost and never queued twice.

A webhook delivery leaves receipts (`webhook_receipt`): one for its body, one for each event id the app
gave its events, each a SHA-256 scoped to the connection. They outlive the inbox rows, so a replay is
known after its events were applied; `forget_receipts` drops them after the retention the receiver sets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection as DBConnection
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from inlet.store.tables import InboxEvent, SyncState, WebhookReceipt, utcnow

__all__ = [
    "HeardChange",
    "InboxRow",
    "add",
    "depth",
    "forget_receipts",
    "pending",
    "receive",
    "remove",
    "save_since",
    "stored_since",
    "stranded",
]

_inbox = InboxEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
_sync = SyncState.__table__  # type: ignore[attr-defined]
_receipts = WebhookReceipt.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class HeardChange:
    """A change as a webhook or a poll reported it."""

    tenant_id: str
    connection_id: str
    data_source: str
    external_id: str
    kind: str  # upsert or deleted
    source: str  # webhook, poll or resync
    record: dict[str, Any] | None = None
    source_event_id: str | None = None
    occurred_at: str | None = None


@dataclass(frozen=True)
class InboxRow:
    id: int
    external_id: str
    kind: str
    record: dict[str, Any] | None
    source: str
    occurred_at: str | None


def add(
    engine: Engine,
    changes: Sequence[HeardChange],
    *,
    since: str | None = None,
    resynced: bool = False,
) -> int:
    """Store changes (an app's retry of an event already here is dropped); with `since`, also move the
    connection's watermark in the same transaction. Returns how many changes were new."""
    with engine.begin() as db:
        added = _insert(db, changes)
        if since is not None and changes:
            _save_since(db, changes[0].connection_id, changes[0].data_source, since, resynced)
    return added


def receive(
    engine: Engine,
    connection_id: str,
    changes: Sequence[HeardChange],
    body_digest: str,
    *,
    now: datetime,
    valid_since: datetime,
) -> int:
    """Store a verified webhook's changes once. Returns how many were new; -1 for a replay (nothing written).

    A replay is a body this connection received since `valid_since`, or a delivery whose events all carry
    event ids it received since then; an event seen before is dropped from a delivery that brings new ones.
    The receipts are claimed first, in one sorted INSERT .. ON CONFLICT: of concurrent copies exactly one
    wins, none fails on the key, and PostgreSQL takes the row locks in one order (no deadlock).
    """
    body_key = _receipt_key(connection_id, "body", body_digest)
    event_keys = {
        c.source_event_id: _receipt_key(connection_id, "event", c.source_event_id) for c in changes if c.source_event_id
    }
    with engine.connect() as db, db.begin() as transaction:
        claimed = _claim(db, [body_key, *event_keys.values()], now, valid_since)
        fresh = [c for c in changes if c.source_event_id is None or event_keys[c.source_event_id] in claimed]
        if body_key not in claimed or (changes and not fresh):
            transaction.rollback()
            return -1
        return _insert(db, fresh)


def forget_receipts(engine: Engine, received_before: datetime) -> int:
    """Drop the webhook receipts older than the replay retention; how many went."""
    with engine.begin() as db:
        return int(db.execute(delete(_receipts).where(_receipts.c.received_at < received_before)).rowcount or 0)


def save_since(engine: Engine, connection_id: str, data_source: str, since: str | None, resynced: bool) -> None:
    """Move a connection's watermark when a poll found nothing to write."""
    with engine.begin() as db:
        _save_since(db, connection_id, data_source, since, resynced)


def stored_since(engine: Engine, connection_id: str, data_source: str) -> str | None:
    with engine.connect() as db:
        return db.execute(
            select(_sync.c.since).where(_sync.c.connection_id == connection_id, _sync.c.data_source == data_source)
        ).scalar_one_or_none()


def pending(engine: Engine, connection_id: str, limit: int) -> list[InboxRow]:
    """The oldest inbox events of one connection, in arrival order."""
    with engine.connect() as db:
        rows = db.execute(
            select(
                _inbox.c.id, _inbox.c.external_id, _inbox.c.kind, _inbox.c.record, _inbox.c.source, _inbox.c.occurred_at
            )
            .where(_inbox.c.connection_id == connection_id, _inbox.c.quarantined_at.is_(None))
            .order_by(_inbox.c.id)
            .limit(limit)
        ).all()
    return [
        InboxRow(r.id, r.external_id, r.kind, orjson.loads(r.record) if r.record else None, r.source, r.occurred_at)
        for r in rows
    ]


def stranded(engine: Engine, older_than_seconds: float) -> list[tuple[str, str, str]]:
    """(tenant, connection, data source) of every connection holding a change received longer ago than this:
    a change whose notice never started a run (a receiver killed between its commit and its notice, a task
    worker or an automation that was down), or one that waits behind a long drain."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    columns = (_inbox.c.tenant_id, _inbox.c.connection_id, _inbox.c.data_source)
    with engine.connect() as db:
        waiting = (_inbox.c.received_at < cutoff, _inbox.c.quarantined_at.is_(None))
        rows = db.execute(select(*columns).where(*waiting).distinct()).all()
    return sorted((row.tenant_id, row.connection_id, row.data_source) for row in rows)


def remove(db: DBConnection, ids: Sequence[int]) -> None:
    """Drop handled events, inside the transaction that recorded their outcome."""
    if ids:
        db.execute(delete(_inbox).where(_inbox.c.id.in_(list(ids))))


def depth(engine: Engine, connection_id: str | None = None) -> int:
    scope = [_inbox.c.quarantined_at.is_(None)]
    scope += [_inbox.c.connection_id == connection_id] if connection_id else []
    with engine.connect() as db:
        return int(db.execute(select(func.count()).select_from(_inbox).where(*scope)).scalar_one())


def _insert(db: DBConnection, changes: Sequence[HeardChange]) -> int:
    if not changes:
        return 0
    now = utcnow()
    rows = [
        {
            "tenant_id": c.tenant_id,
            "connection_id": c.connection_id,
            "data_source": c.data_source,
            "external_id": c.external_id,
            "kind": c.kind,
            "source": c.source,
            "record": orjson.dumps(c.record).decode() if c.record is not None else None,
            "source_event_id": c.source_event_id,
            "occurred_at": c.occurred_at,
            "received_at": now,
        }
        for c in changes
    ]
    # RETURNING lists only the rows inserted (an app's retry of a known event is skipped); rowcount of an
    # executemany is not reliable across drivers.
    return len(db.execute(_insert_ignoring_duplicates(db).returning(_inbox.c.id), rows).all())


def _insert_ignoring_duplicates(db: DBConnection) -> Any:
    if db.dialect.name == "sqlite":
        return sqlite.insert(_inbox).on_conflict_do_nothing()
    if db.dialect.name == "postgresql":
        return postgresql.insert(_inbox).on_conflict_do_nothing()
    return insert(_inbox)


def _receipt_key(connection_id: str, kind: str, value: str) -> str:
    digest = hashlib.sha256()
    for part in (connection_id, kind, value):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()


def _claim(db: DBConnection, keys: Sequence[str], now: datetime, valid_since: datetime) -> set[str]:
    """The receipts among `keys` this transaction wrote: new ones, and those older than `valid_since`."""
    rows = [{"digest": key, "received_at": now} for key in sorted(set(keys))]
    dialect = sqlite if db.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(_receipts).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[_receipts.c.digest],
        set_={"received_at": statement.excluded.received_at},
        where=_receipts.c.received_at < valid_since,
    )
    return {row.digest for row in db.execute(statement.returning(_receipts.c.digest))}


def _save_since(db: DBConnection, connection_id: str, data_source: str, since: str | None, resynced: bool) -> None:
    now = utcnow()
    values = {"since": since, "last_poll_at": now, **({"last_resync_at": now} if resynced else {})}
    key = (_sync.c.connection_id == connection_id, _sync.c.data_source == data_source)
    if db.execute(select(_sync.c.connection_id).where(*key)).first() is None:
        db.execute(insert(_sync).values(connection_id=connection_id, data_source=data_source, **values))
    else:
        db.execute(_sync.update().where(*key).values(**values))
