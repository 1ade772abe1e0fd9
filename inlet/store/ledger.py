"""The record ledger: classifies each mapped record and commits a page atomically.

One transaction per page writes the ledger rows, the outbox events and the checkpoint, so a crash
either keeps the whole page or none of it. After a complete enumeration, `sweep` turns records the
enumeration never saw into `deleted` events, unless that would delete a suspicious share of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection as DBConnection
from sqlalchemy import Engine, and_, bindparam, delete, func, insert, null, select, update

from inlet.store.checkpoints import advance
from inlet.store.engine import execute_many, execute_rows
from inlet.store.inbox import remove as remove_from_inbox
from inlet.store.outbox import Claim, NewEvent, write_events
from inlet.store.push import bump_in
from inlet.store.scope import PageScope
from inlet.store.tables import LedgerEntry, QuarantinedRecord, utcnow

__all__ = [
    "MappedRecord",
    "PageCounts",
    "SweepResult",
    "payload_hash",
    "quarantine_reasons",
    "live_ids",
    "stored_hashes",
    "sweep",
    "write_changes",
    "write_page",
]

_ledger = LedgerEntry.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
_quarantine = QuarantinedRecord.__table__  # type: ignore[attr-defined]


class MappedRecord(NamedTuple):
    """One record mapped for the app, with what the ledger keeps of it (a named tuple: cheap to make per record)."""

    external_id: str
    record: dict[str, Any]
    source_updated_at: str | None
    raw: str | None = None  # the source record as JSON, kept in the ledger for remap
    echo: bool = False  # inlet's own write heard again (inlet.store.echoes): recorded, never sent back


@dataclass
class PageCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    echo_suppressed: int = 0

    def add(self, other: PageCounts) -> None:
        for name in ("created", "updated", "unchanged", "deleted", "quarantined", "echo_suppressed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SweepResult:
    live: int = 0
    stale: int = 0
    deleted: int = 0
    refused: bool = False
    reason: str = ""
    deleted_ids: list[str] = field(default_factory=list)


def payload_hash(record: dict[str, Any]) -> str:
    return hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def write_page(
    engine: Engine,
    scope: PageScope,
    records: Sequence[MappedRecord],
    *,
    quarantined: Iterable[tuple[str, str, str]] = (),
    next_request: str | None,
    claim: Claim | None = None,
    pages: int = 1,
) -> PageCounts:
    """Classify and commit one page (or `pages` consecutive ones) with its checkpoint; quarantined is (external_id,
    raw json, error). With a `claim`, the page's events are written claimed by its owner and listed in
    `claim.written` (after the commit, they may be sent from memory)."""
    latest = {r.external_id: r for r in records}  # an id seen twice in a page: the later copy wins
    quarantined = list(quarantined)
    # A known record that now fails mapping still exists in the source: the sweep must not delete it.
    held = [external_id for external_id, _, _ in quarantined if external_id not in latest]
    counts = PageCounts()
    written = len(claim.written) if claim is not None else 0
    try:
        with engine.begin() as db:
            _stage_and_apply(db, scope, latest, held, counts, claim)
            counts.quarantined = _quarantine_rows(db, scope, quarantined)
            _count_echoes(db, scope, counts)
            advance(db, scope.connection_id, scope.data_source, next_request, len(records), pages)
    except BaseException:
        if claim is not None:  # rolled back: none of the page's events exist
            del claim.written[written:]
        raise
    return counts


def write_changes(
    engine: Engine,
    scope: PageScope,
    records: Sequence[MappedRecord],
    deleted_ids: Sequence[str],
    *,
    quarantined: Iterable[tuple[str, str, str]] = (),
    handled_inbox_ids: Sequence[int] = (),
    echoed_deletes: Sequence[str] = (),
) -> PageCounts:
    """Classify changed records and record deletions, and remove the inbox rows they came from
    (`handled_inbox_ids`) in the same transaction, so a change reaches the outbox exactly once."""
    latest = {r.external_id: r for r in records}
    quarantined = list(quarantined)
    held = [external_id for external_id, _, _ in quarantined if external_id not in latest]
    counts = PageCounts()
    with engine.begin() as db:
        _stage_and_apply(db, scope, latest, held, counts)
        gone = [i for i in dict.fromkeys(deleted_ids) if i not in latest]
        counts.deleted = _delete(db, scope, gone)
        counts.echo_suppressed += len(echoed_deletes)
        _release(db, scope, gone)  # a quarantined record deleted at the source has nothing left to retry
        counts.quarantined = _quarantine_rows(db, scope, quarantined)
        _count_echoes(db, scope, counts)
        remove_from_inbox(db, handled_inbox_ids)
    return counts


def _count_echoes(db: DBConnection, scope: PageScope, counts: PageCounts) -> None:
    if counts.echo_suppressed:
        bump_in(db, scope.connection_id, scope.data_source, utcnow(), echo_suppressed=counts.echo_suppressed)


def stored_hashes(engine: Engine, scope: PageScope, ids: Sequence[str]) -> dict[str, str | None]:
    """The ledger's payload hash of each known id (None for a record marked deleted)."""
    with engine.connect() as db:
        return {
            k: (None if row.deleted_at is not None else row.payload_hash)
            for k, row in _known(db, scope, list(ids)).items()
        }


def live_ids(engine: Engine, scope: PageScope) -> set[str]:
    """Ids of the records the app holds (not deleted) for one connection and data source."""
    with engine.connect() as db:
        rows = db.execute(select(_ledger.c.external_id).where(*_scope_filter(scope), _ledger.c.deleted_at.is_(None)))
        return {row.external_id for row in rows}


def _stage_and_apply(
    db: DBConnection,
    scope: PageScope,
    latest: dict[str, MappedRecord],
    held: list[str],
    counts: PageCounts,
    claim: Claim | None = None,
) -> None:
    known = _known(db, scope, [*latest, *held])
    if _any_quarantined(db, scope):
        _release(db, scope, list(latest))
    generation = scope.generation
    inserts: list[tuple[Any, ...]] = []
    changes: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    events: list[NewEvent] = []
    for external_id, mapped in latest.items():
        body = orjson.dumps(mapped.record, option=orjson.OPT_SORT_KEYS)  # one serialization: hash and event
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        row = known.get(external_id)
        if row is None:
            updated_at = mapped.source_updated_at
            inserts.append(
                (
                    scope.connection_id,
                    scope.data_source,
                    external_id,
                    digest,
                    1,
                    updated_at,
                    generation,
                    generation,
                    mapped.raw,
                )
            )
            if mapped.echo:
                counts.echo_suppressed += 1
                continue
            events.append(NewEvent(external_id, "created", 1, body.decode(), updated_at))
            counts.created += 1
        elif row.payload_hash != digest or row.deleted_at is not None:
            kind = "created" if row.deleted_at is not None else "updated"
            changes.append(
                {
                    **_ledger_key(scope, external_id),
                    "h": digest,
                    "v": row.version + 1,
                    "u": mapped.source_updated_at,
                    "g": generation,
                    "r": mapped.raw,
                }
            )
            if mapped.echo:
                counts.echo_suppressed += 1
                continue
            events.append(NewEvent(external_id, kind, row.version + 1, body.decode(), mapped.source_updated_at))
            counts.created += kind == "created"
            counts.updated += kind == "updated"
        else:
            seen.append({**_ledger_key(scope, external_id), "g": generation, "r": mapped.raw})
            counts.unchanged += 1
    kept = [{**_ledger_key(scope, external_id), "g": generation} for external_id in held if external_id in known]
    _apply(db, scope, inserts, changes, seen, events, kept, claim)


def sweep(engine: Engine, scope: PageScope, *, max_share: float, force: bool = False) -> SweepResult:
    """Mark records the finished enumeration never saw as deleted, with a guard against mass deletes."""
    with engine.begin() as db:
        alive = and_(*_scope_filter(scope), _ledger.c.deleted_at.is_(None))
        live = db.execute(select(func.count()).select_from(_ledger).where(alive)).scalar_one()
        stale = db.execute(
            select(_ledger.c.external_id, _ledger.c.version).where(alive, _ledger.c.last_seen_run != scope.generation)
        ).all()
        result = SweepResult(live=live, stale=len(stale))
        if stale and not force and len(stale) > max_share * live:
            result.refused = True
            result.reason = (
                f"refused to delete {len(stale)} of {live} live records ({len(stale) / live:.0%} > "
                f"{max_share:.0%}): the enumeration looks short. Check the source, then rerun with force_delete."
            )
            return result
        _mark_deleted(db, scope, [(external_id, version) for external_id, version in stale])
        result.deleted = len(stale)
        result.deleted_ids = [external_id for external_id, _ in stale[:20]]
    return result


def _delete(db: DBConnection, scope: PageScope, ids: Sequence[str]) -> int:
    """Mark the live ones among `ids` deleted, each with a `deleted` event; ids never imported are ignored."""
    known = _known(db, scope, list(ids))
    live = [(i, row.version) for i, row in known.items() if row.deleted_at is None]
    _mark_deleted(db, scope, live)
    return len(live)


def _mark_deleted(db: DBConnection, scope: PageScope, records: Sequence[tuple[str, int]]) -> None:
    now = utcnow()
    for start in range(0, len(records), 1000):
        chunk = records[start : start + 1000]
        db.execute(
            update(_ledger)
            .where(*_scope_filter(scope), _ledger.c.external_id == bindparam("e"))
            .values(version=bindparam("v"), deleted_at=now),
            [{"e": external_id, "v": version + 1} for external_id, version in chunk],
        )
        write_events(db, scope, [NewEvent(external_id, "deleted", version + 1) for external_id, version in chunk])


def _scope_filter(scope: PageScope) -> list[Any]:
    return [_ledger.c.connection_id == scope.connection_id, _ledger.c.data_source == scope.data_source]


_KNOWN = select(_ledger.c.external_id, _ledger.c.payload_hash, _ledger.c.version, _ledger.c.deleted_at).where(
    _ledger.c.connection_id == bindparam("c"), _ledger.c.data_source == bindparam("d")
)
# On SQLite the page's ids travel as one JSON array: an IN list of a thousand parameters costs more to compile
# than the lookup itself.
_KNOWN_SQLITE = _KNOWN.where(
    _ledger.c.external_id.in_(select(func.json_each(bindparam("ids")).table_valued("value").c.value))
)
_KNOWN_ANY = _KNOWN.where(_ledger.c.external_id.in_(bindparam("ids", expanding=True)))


def _known(db: DBConnection, scope: PageScope, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    where = {"c": scope.connection_id, "d": scope.data_source}
    if db.dialect.name == "sqlite":
        rows = db.execute(_KNOWN_SQLITE, {**where, "ids": orjson.dumps(ids).decode()})
    else:
        rows = db.execute(_KNOWN_ANY, {**where, "ids": ids})
    return {row.external_id: row for row in rows}


_ANY_QUARANTINED = (
    select(_quarantine.c.external_id)
    .where(_quarantine.c.connection_id == bindparam("c"), _quarantine.c.data_source == bindparam("d"))
    .limit(1)
)


def _any_quarantined(db: DBConnection, scope: PageScope) -> bool:
    """Whether the connection's data source has quarantined records (most pages of most runs: none to release)."""
    found = db.execute(_ANY_QUARANTINED, {"c": scope.connection_id, "d": scope.data_source}).first()
    return found is not None


def _ledger_key(scope: PageScope, external_id: str) -> dict[str, str]:
    return {"c": scope.connection_id, "d": scope.data_source, "e": external_id}


_KEY = and_(
    _ledger.c.connection_id == bindparam("c"),
    _ledger.c.data_source == bindparam("d"),
    _ledger.c.external_id == bindparam("e"),
)
# Built once, so execute_many compiles each once per process.
_INSERT = insert(_ledger)
# The columns a new ledger row sets, in the table's order (deleted_at starts NULL): rows are tuples in this order.
_NEW_ROW = (
    "connection_id",
    "data_source",
    "external_id",
    "payload_hash",
    "version",
    "source_updated_at",
    "first_seen_run",
    "last_seen_run",
    "raw",
)
_CHANGE = (
    update(_ledger)
    .where(_KEY)
    .values(
        payload_hash=bindparam("h"),
        version=bindparam("v"),
        source_updated_at=bindparam("u"),
        last_seen_run=bindparam("g"),
        deleted_at=null(),
        raw=bindparam("r"),
    )
)
_SEEN = update(_ledger).where(_KEY).values(last_seen_run=bindparam("g"), raw=bindparam("r"))
_KEPT = update(_ledger).where(_KEY).values(last_seen_run=bindparam("g"))


def _apply(
    db: DBConnection,
    scope: PageScope,
    inserts: list[tuple[Any, ...]],
    changes: list[dict[str, Any]],
    seen: list[dict[str, Any]],
    events: list[NewEvent],
    kept: list[dict[str, Any]],
    claim: Claim | None = None,
) -> None:
    """Write a page; `inserts` are new records (`_NEW_ROW`), `seen` unchanged ones (their raw payload may have
    changed), `kept` ones that failed mapping."""
    execute_rows(db, _INSERT, _NEW_ROW, inserts)
    execute_many(db, _CHANGE, changes)
    execute_many(db, _SEEN, seen)
    execute_many(db, _KEPT, kept)
    write_events(db, scope, events, claim)


def _release(db: DBConnection, scope: PageScope, ids: Sequence[str]) -> None:
    """Quarantined copies of records that now map are resolved: remove them."""
    for start in range(0, len(ids), 1000):
        db.execute(
            delete(_quarantine).where(
                _quarantine.c.connection_id == scope.connection_id,
                _quarantine.c.data_source == scope.data_source,
                _quarantine.c.external_id.in_(ids[start : start + 1000]),
            )
        )


def _quarantine_rows(db: DBConnection, scope: PageScope, rows: Iterable[tuple[str, str, str]]) -> int:
    rows = list(rows)
    _release(db, scope, [external_id for external_id, _, _ in rows])  # one row per record: the newest failure
    values = [
        {
            "connection_id": scope.connection_id,
            "data_source": scope.data_source,
            "external_id": external_id,
            "raw": raw,
            "error": error,
            "run_id": scope.run_id,
            "created_at": utcnow(),
        }
        for external_id, raw, error in rows
    ]
    if values:
        db.execute(insert(_quarantine), values)
    return len(values)


def quarantine_reasons(engine: Engine, connection_id: str, run_id: str, top: int = 3) -> list[tuple[str, int]]:
    """The most frequent errors of the records one run quarantined, with their counts, most frequent first."""
    count = func.count().label("n")
    query = (
        select(_quarantine.c.error, count)
        .where(_quarantine.c.connection_id == connection_id, _quarantine.c.run_id == run_id)
        .group_by(_quarantine.c.error)
        .order_by(count.desc(), _quarantine.c.error)
        .limit(top)
    )
    with engine.connect() as db:
        return [(str(error), int(n)) for error, n in db.execute(query)]
