"""The store's engine: SQLite at `.inlet/inlet.db` by default, PostgreSQL via INLET_DATABASE_URL, brought to
the newest schema by alembic; and the driver-level executemany the hot paths use."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache, lru_cache
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ClauseElement, ColumnElement, Dialect, Engine, event, text
from sqlalchemy import Connection as DBConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import create_engine

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "Store",
    "bind_value",
    "create_store_engine",
    "execute_many",
    "execute_rows",
    "head_revision",
    "migrate",
    "newest_revision",
    "open_store",
    "shared_store",
]

Store = Engine
"""A handle on the inlet store, as the store's functions take it (callers need not know it is SQLAlchemy's)."""


def execute_many(db: DBConnection, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]) -> None:
    """executemany at the driver level, for the hot path: one compile, no per-row parameter processing.

    Row values must already be what the driver takes (str, int, None; datetimes through `bind_value`).
    SQLAlchemy's own executemany spends more per row on parameter processing than SQLite spends inserting.
    """
    if not rows:
        return
    sql, names, positional = _compiled(statement, tuple(rows[0]), db.dialect)
    params: Sequence[Any] = rows
    if positional and len(names) > 1:
        params = list(map(itemgetter(*names), rows))  # a row's values in the statement's order, made in C
    elif positional:
        params = [(row[names[0]],) for row in rows] if names else [() for _ in rows]
    db.exec_driver_sql(sql, params)


def execute_rows(
    db: DBConnection, statement: ClauseElement, keys: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """`execute_many` for rows given as tuples of the values of `keys`, in that order: a hot path builds one tuple
    per row instead of a dict, and when the statement binds in the same order (an INSERT whose keys follow the
    table's columns) the driver takes the tuples as they are."""
    if not rows:
        return
    sql, names, positional = _compiled(statement, keys, db.dialect)
    params: Sequence[Any]
    if not positional:
        params = [dict(zip(keys, row, strict=True)) for row in rows]
    elif names == keys:
        params = rows
    else:
        order = [keys.index(name) for name in names]
        params = [tuple(row[i] for i in order) for row in rows]
    db.exec_driver_sql(sql, params)


@lru_cache(maxsize=256)
def _compiled(statement: ClauseElement, keys: tuple[str, ...], dialect: Dialect) -> tuple[str, tuple[str, ...], bool]:
    """The SQL of `statement` for rows with `keys`, its parameters' order, and whether they are positional (cached:
    the hot paths build their statements once)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    assert isinstance(compiled, SQLCompiler)
    return compiled.string, tuple(compiled.positiontup or ()), bool(compiled.positional)


def bind_value(db: DBConnection, column: ColumnElement[Any], value: Any) -> Any:
    """A value as this dialect's driver takes it for `column` (SQLite stores datetimes as text)."""
    processor = column.type.bind_processor(db.dialect)
    value = processor(value) if processor else value
    if isinstance(value, datetime) and db.dialect.name == "sqlite":
        return value.isoformat(" ")  # what sqlite3's default adapter stores, made once rather than once per row
    return value


def create_store_engine(url: str) -> Engine:
    """An engine for the store; SQLite gets WAL, a busy timeout and thread sharing."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url in ("sqlite://", "sqlite:///:memory:"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        _owner_only_file(Path(url.removeprefix("sqlite:///").partition("?")[0]))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _owner_only_file(path: Path) -> None:
    """The store holds raw tenant records: a new file is created 0600 before SQLite opens it, an older one is
    made 0600 with its -wal and -shm (SQLite gives those the database file's permissions when it makes them).

    An existing file is never opened here: closing any descriptor of a SQLite file drops the POSIX locks this
    process's connections hold on it.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if stat.S_IMODE(part.stat().st_mode) & 0o077:
                part.chmod(0o600)
        except FileNotFoundError:  # no -wal or -shm while no connection is open
            pass


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_store(url: str) -> Engine:
    """An engine on a store migrated to the newest schema (alembic runs only when the store is behind: a flow
    run's process would otherwise spend ~0.3 s of CPU importing and running it to find nothing to do)."""
    engine = create_store_engine(url)
    if _stored_revision(engine) != newest_revision():
        migrate(engine)
    return engine


_MIGRATIONS = Path(__file__).parent / "migrations"


def newest_revision() -> str:
    """The newest migration's revision, from its file name (`NNNN_what.py` holds revision "NNNN")."""
    return max(path.name.split("_", 1)[0] for path in (_MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _stored_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no alembic_version table yet: a new store
        return None


@cache
def shared_store(url: str) -> Engine:
    """This process's one engine on the store at `url`, opened (and migrated) on first use; flow runs share it.

    An engine per run would check the migrations again each time, and SQLAlchemy's ORM mappers keep up to 100
    compiled statements per engine, so a process running many small flows grew by about 0.1 MB a run.
    """
    return open_store(url)


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest alembic revision this code knows, as alembic reads it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def migrate(engine: Engine) -> None:
    """Bring the store's schema to the newest alembic revision."""
    from alembic import command

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
