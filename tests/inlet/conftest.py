"""Store fixtures: a migrated store on SQLite (a tmp file) and on PostgreSQL (a database made for this run)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text

from inlet.store import create_store_engine, migrate

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_SKIP_REASON = "PostgreSQL not reachable at 127.0.0.1:5432"
STORE_TABLES = ("ledger", "outbox", "checkpoint", "quarantine", "connection", "tenant")

DatabaseFactory = Callable[[], str]


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[DatabaseFactory]:
    """`create()` makes an empty database `inlet_test_<random>` and returns its URL; all are dropped at the end."""
    if not _pg_reachable():
        pytest.skip(PG_SKIP_REASON)
    created: list[str] = []

    def create() -> str:
        name = f"inlet_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield create
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in created:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_store(pg_databases: DatabaseFactory) -> Iterator[Engine]:
    """One migrated PostgreSQL store for the session; the `engine` fixture empties it before each test."""
    engine = create_store_engine(pg_databases())
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated store in a new SQLite file."""
    engine = create_store_engine(f"sqlite:///{tmp_path_factory.mktemp('store') / 'inlet.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        sqlite: Engine = request.getfixturevalue("sqlite_engine")
        return sqlite
    pg: Engine = request.getfixturevalue("pg_store")
    with pg.begin() as db:
        db.execute(text(f"TRUNCATE {', '.join(STORE_TABLES)} RESTART IDENTITY CASCADE"))
    return pg
