"""Records inlet keeps: raw payloads in the ledger (for remap and preview) and quarantined records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, func, select

from inlet.store.tables import LedgerEntry, QuarantinedRecord

__all__ = [
    "Quarantined",
    "drop_quarantined",
    "live_count",
    "quarantine_count",
    "quarantined",
    "raw_batches",
    "raw_sample",
]

_ledger = LedgerEntry.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
_quarantine = QuarantinedRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Quarantined:
    id: int
    connection_id: str
    data_source: str
    external_id: str
    raw: str
    error: str
    run_id: str
    created_at: datetime


def live_count(engine: Engine, connection_id: str, data_source: str) -> int:
    """How many records of a connection's data source the app holds (imported, not deleted)."""
    with engine.connect() as db:
        live: int = db.execute(
            select(func.count())
            .select_from(_ledger)
            .where(
                _ledger.c.connection_id == connection_id,
                _ledger.c.data_source == data_source,
                _ledger.c.deleted_at.is_(None),
            )
        ).scalar_one()
    return live


def raw_batches(
    engine: Engine, connection_id: str, data_source: str, size: int = 1000
) -> Iterator[list[tuple[str, str]]]:
    """(external_id, raw JSON) of every live record with a kept payload, in batches, by id."""
    after = ""
    while True:
        with engine.connect() as db:
            rows = db.execute(
                select(_ledger.c.external_id, _ledger.c.raw)
                .where(
                    _ledger.c.connection_id == connection_id,
                    _ledger.c.data_source == data_source,
                    _ledger.c.deleted_at.is_(None),
                    _ledger.c.raw.is_not(None),
                    _ledger.c.external_id > after,
                )
                .order_by(_ledger.c.external_id)
                .limit(size)
            ).all()
        if not rows:
            return
        yield [(row.external_id, row.raw) for row in rows]
        after = rows[-1].external_id


def raw_sample(engine: Engine, connection_id: str, data_source: str, limit: int) -> list[tuple[str, str]]:
    """The first `limit` kept payloads of a connection, by id."""
    return next(raw_batches(engine, connection_id, data_source, limit), [])


def quarantined(
    engine: Engine,
    connection_ids: Sequence[str],
    *,
    ids: Sequence[int] = (),
    limit: int | None = None,
    after: int | None = None,
) -> list[Quarantined]:
    """Quarantined records of the given connections (optionally only the given row ids, or those after a row
    id), oldest first."""
    query = select(*(_quarantine.c[name] for name in Quarantined.__dataclass_fields__)).where(
        _quarantine.c.connection_id.in_(list(connection_ids))
    )
    if ids:
        query = query.where(_quarantine.c.id.in_(list(ids)))
    if after is not None:
        query = query.where(_quarantine.c.id > after)
    with engine.connect() as db:
        rows = db.execute(query.order_by(_quarantine.c.id).limit(limit)).all()
    return [Quarantined(**row._mapping) for row in rows]


def quarantine_count(engine: Engine, connection_id: str) -> int:
    with engine.connect() as db:
        count: int = db.execute(
            select(func.count()).select_from(_quarantine).where(_quarantine.c.connection_id == connection_id)
        ).scalar_one()
    return count


def drop_quarantined(engine: Engine, connection_ids: Sequence[str], ids: Sequence[int]) -> int:
    """Delete quarantined records (of these connections only); how many went."""
    with engine.begin() as db:
        dropped: int = db.execute(
            delete(_quarantine).where(
                _quarantine.c.connection_id.in_(list(connection_ids)), _quarantine.c.id.in_(list(ids))
            )
        ).rowcount
    return dropped
