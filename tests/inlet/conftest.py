"""Store fixtures: a migrated store on SQLite (a tmp file) and on PostgreSQL (a database made for this run)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from inlet.store import create_store_engine, migrate
from tests.conftest import DatabaseFactory

STORE_TABLES = (
    "push_outbox",
    "data_link",
    "push_echo",
    "push_stat",
    "ledger",
    "sync_policy",
    "webhook_subscription",
    "outbox",
    "checkpoint",
    "quarantine",
    "connection",
    "tenant",
    "inbox",
    "sync_state",
    "webhook_receipt",
    "destination",
    "destination_state",
    "oauth_client",
    "oauth_state",
    "oauth_token",
    "mapping_override",
    "app_schema",
    "api_key",
    "connect_session",
    "audit_log",
    "rate_bucket",
)


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
