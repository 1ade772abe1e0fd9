"""A connector from outside the source tree (TinyCRM, on INLET_CONNECTORS_PATH) end to end: full import, then
creates, updates and deletes read by its `changes:` (created since OR updated since, deletions from the audit
log), until the team's app holds exactly what the source holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.registry import make_simulator
from connectors.simulation import SimulatorBase
from flows.full_import import full_import
from flows.incremental_import import incremental_import
from flows.poll_changes import poll_changes
from flows.runtime import ImportJob
from inlet.store import Vault, add_connection, open_store
from tests.conftest import InletEnv, InletEnvFactory
from tests.support.outside import outside_connector
from tests.support.serving import serve_in_thread

TENANT, CONNECTION = "acme", "acme-tinycrm"


def app_state(env: InletEnv) -> dict[str, tuple[Any, ...]]:
    records = env.app_records(connection=CONNECTION)
    return {r["external_id"]: (r["record"]["email"], r["record"]["fullName"], r["record"]["title"]) for r in records}


def source_state(sim: SimulatorBase) -> dict[str, tuple[Any, ...]]:
    people = [sim.find(i) for i in sim.ids()]
    return {sim.external_id(p): (p.email, p.full_name, p.title) for p in people if p is not None}


def test_an_outside_connector_imports_and_its_changes_reach_the_app(
    inlet_env: InletEnvFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside_connector(tmp_path / "team-connectors", monkeypatch)
    env = inlet_env(records=1)
    sim = make_simulator("tinycrm", 60)
    with serve_in_thread(sim.app) as url:
        parameters, credentials = sim.connection(url)
        engine = open_store(env.settings.store_url)
        vault = Vault.from_settings(env.settings)
        add_connection(
            engine, vault, tenant_id=TENANT, connection_id=CONNECTION, app="tinycrm", parameters=parameters,
            credentials={k: SecretStr(v.get_secret_value()) for k, v in credentials.items()},
        )  # fmt: skip
        imported = asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
        assert app_state(env) == source_state(sim) and len(app_state(env)) == 60
        ids = sim.ids()
        created, updated, deleted = sim.create(3), sim.update(ids[:4]), sim.delete(ids[4:9])
        updated += sim.update(created[:1])  # a record created and edited since the import
        polled = asyncio.run(poll_changes(TENANT, CONNECTION))
        applied = asyncio.run(incremental_import(TENANT, CONNECTION))
    assert imported.records_seen == 60 and polled.mode == "changes"
    assert (polled.upserts, polled.deletions) == (7, 5)
    assert (applied.created, applied.updated, applied.deleted) == (3, 4, 5)
    assert app_state(env) == source_state(sim) and len(app_state(env)) == 58
    assert set(deleted).isdisjoint(app_state(env)) and set(created) <= set(app_state(env))
