"""Echo recognition: a change the import path hears that is only inlet's own write coming back.

A heard record is an echo when inlet wrote it within the window (a `push_echo` row for its external id) and:
every field inlet wrote still holds the value it wrote (compared by hash), and the record was not modified
after inlet's write (its modified time is not later than the one the write returned; its etag, where the
connector gives one, equals the write's). The app's own "modified by" marker, where a connector has one,
decides on its own: `by_inlet=False` is never an echo. A deletion is an echo when inlet deleted the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection as DBConnection
from sqlalchemy import Engine, exists, select

from connectors.paths import PRIMARY, primary_index
from inlet.store.push import value_hash
from inlet.store.push_tables import PushEcho
from inlet.store.tables import utcnow

__all__ = ["Heard", "deleted_echoes", "echo_ids", "field_value"]

_echo = PushEcho.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
_MISSING = object()


@dataclass(frozen=True)
class Heard:
    """One record the import heard, as the echo check needs it."""

    external_id: str
    raw: Mapping[str, Any]
    modified_at: str | None
    by_inlet: bool | None = None  # the app's own marker, where the connector reads one


def field_value(raw: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`names.0.givenName`), or a marker that never hashes equal when absent. The
    step `primary` picks a list's primary item (connectors.paths: such lists have no guaranteed order)."""
    value: Any = raw
    for step in path.split("."):
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step == PRIMARY and value:
            value = value[primary_index(value)]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def echo_ids(
    engine: Engine, connection_id: str, data_source: str, heard: Iterable[Heard], *, window_seconds: float
) -> set[str]:
    """The external ids among `heard` that are echoes of inlet's own writes. `heard` is taken only when inlet
    wrote to the connection within the window: a generator spares the common case building a `Heard` per record."""
    since = utcnow() - timedelta(seconds=window_seconds)
    scope = (_echo.c.connection_id == connection_id, _echo.c.data_source == data_source, _echo.c.written_at >= since)
    with engine.connect() as db:
        if not db.execute(select(exists().where(*scope))).scalar():
            return set()  # the common case: nothing written lately, one indexed probe per page
        heard = list(heard)
        writes = _writes(db, scope, [h.external_id for h in heard])
    return {h.external_id for h in heard if any(_is_echo(h, w) for w in writes.get(h.external_id, ()))}


def deleted_echoes(
    engine: Engine, connection_id: str, data_source: str, external_ids: Iterable[str], *, window_seconds: float
) -> set[str]:
    """The external ids whose deletion inlet made itself (within the window)."""
    ids = list(external_ids)
    if not ids:
        return set()
    since = utcnow() - timedelta(seconds=window_seconds)
    with engine.connect() as db:
        rows = db.execute(
            select(_echo.c.external_id).where(
                _echo.c.connection_id == connection_id,
                _echo.c.data_source == data_source,
                _echo.c.kind == "deleted",
                _echo.c.written_at >= since,
                _echo.c.external_id.in_(ids),
            )
        ).scalars()
        return set(rows)


def _writes(db: DBConnection, scope: tuple[Any, ...], ids: list[str]) -> dict[str, list[Any]]:
    writes: dict[str, list[Any]] = {}
    for start in range(0, len(ids), 500):
        rows = db.execute(
            select(_echo.c.external_id, _echo.c.kind, _echo.c.field_hashes, _echo.c.etag, _echo.c.modified_at)
            .where(*scope, _echo.c.kind != "deleted", _echo.c.external_id.in_(ids[start : start + 500]))
            .order_by(_echo.c.id.desc())
        )
        for row in rows:
            writes.setdefault(row.external_id, []).append(row)
    return writes


def _is_echo(heard: Heard, write: Any) -> bool:
    if heard.by_inlet is False:
        return False
    if heard.modified_at and write.modified_at and _later(heard.modified_at, write.modified_at):
        return False  # modified after inlet's write: someone else changed it
    hashes: dict[str, str] = write.field_hashes or {}
    for path, digest in hashes.items():
        value = field_value(heard.raw, path)
        if value is _MISSING or value_hash(value) != digest:
            return False
    return True


def _later(heard: str, written: str) -> bool:
    try:
        return _instant(heard) > _instant(written)
    except ValueError:
        return heard != written  # not comparable as times: only the very same stamp is ours


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.now().astimezone().tzinfo)
