"""The store: engines for SQLite and PostgreSQL, and alembic migrations on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from inlet.store import (
    Connection,
    Tenant,
    create_store_engine,
    head_revision,
    migrate,
    newest_revision,
    open_store,
    shared_store,
)
from tests.conftest import DatabaseFactory
from tests.inlet.conftest import STORE_TABLES


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database that no migration has touched."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nested' / 'inlet.db'}"
    else:
        factory: DatabaseFactory = request.getfixturevalue("pg_databases")
        url = factory()
    engine = create_store_engine(url)
    yield engine
    engine.dispose()


def _versions(engine: Engine) -> list[str]:
    with engine.connect() as db:
        return list(db.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_migrate_creates_every_table_and_the_alembic_version(fresh: Engine) -> None:
    assert inspect(fresh).get_table_names() == []
    migrate(fresh)
    assert set(inspect(fresh).get_table_names()) == {*STORE_TABLES, "alembic_version"}
    assert _versions(fresh) == [head_revision()]


def test_migrate_twice_is_a_no_op_that_keeps_data(fresh: Engine) -> None:
    migrate(fresh)
    with Session(fresh) as session:
        session.add(Tenant(id="acme", name="Acme"))
        session.commit()
    migrate(fresh)
    assert _versions(fresh) == [head_revision()]
    with Session(fresh) as session:
        assert session.get(Tenant, "acme") is not None


def test_the_newest_migration_file_names_alembic_s_head() -> None:
    assert newest_revision() == head_revision()  # open_store's fast path relies on `NNNN_what.py` holding "NNNN"


def test_open_store_runs_alembic_only_while_the_store_is_behind(fresh: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fresh.url.render_as_string(hide_password=False)
    open_store(url).dispose()  # a new store: migrated
    assert _versions(fresh) == [head_revision()]

    def no_alembic(engine: Engine) -> None:
        raise AssertionError("alembic ran on an up-to-date store")

    monkeypatch.setattr("inlet.store.engine.migrate", no_alembic)
    open_store(url).dispose()
    with fresh.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    with pytest.raises(AssertionError, match="alembic ran"):
        open_store(url)  # a store behind the code is migrated


def test_migrations_build_exactly_the_tables_the_models_declare(fresh: Engine) -> None:
    migrate(fresh)
    with fresh.connect() as db:
        differences = compare_metadata(MigrationContext.configure(db), SQLModel.metadata)
    assert differences == []


def test_outbox_has_the_drain_index(fresh: Engine) -> None:
    migrate(fresh)
    indexes = {index["name"]: index["column_names"] for index in inspect(fresh).get_indexes("outbox")}
    assert indexes["ix_outbox_drain"] == ["connection_id", "status", "id"]


def test_connection_needs_an_existing_tenant(fresh: Engine) -> None:
    migrate(fresh)
    with Session(fresh) as session, pytest.raises(IntegrityError):
        session.add(Connection(id="c1", tenant_id="nobody", app="hubspot"))
        session.commit()


def test_sqlite_file_engine_uses_wal_and_creates_the_folder(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'inlet.db'}")
    with engine.connect() as db:
        assert db.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert db.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    assert (tmp_path / "a" / "b" / "inlet.db").is_file()
    engine.dispose()


def test_in_memory_sqlite_keeps_one_database_across_connections() -> None:
    engine = create_store_engine("sqlite://")
    migrate(engine)
    with engine.connect() as other:
        assert "ledger" in inspect(other).get_table_names()
    engine.dispose()


def test_shared_store_is_one_migrated_engine_per_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inlet.db'}"
    engine = shared_store(url)

    assert shared_store(url) is engine
    assert shared_store(f"sqlite:///{tmp_path / 'other.db'}") is not engine
    with engine.connect() as db:
        assert db.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()


@pytest.mark.postgres
def test_postgres_databases_are_made_for_this_run(pg_databases: DatabaseFactory) -> None:
    url = pg_databases()
    assert "/inlet_test_" in url and url.startswith("postgresql+psycopg://")
    assert url != pg_databases()
