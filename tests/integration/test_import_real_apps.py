"""Full imports from real, independently written apps (Kinto, json-server) through the Prefect flow."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from flows.full_import import ImportSummary, full_import
from flows.runtime import ImportJob
from inlet.store import open_store
from inlet.tenancy import add_connection
from inlet.vault import Vault
from tests.conftest import InletEnv, InletEnvFactory
from tests.integration.conftest import JsonServerFactory
from tests.support.real_apps import KintoServer

pytestmark = pytest.mark.real_app


def _connect(env: InletEnv, connection: str, app: str, parameters: dict[str, str], **credentials: str) -> None:
    add_connection(
        open_store(env.settings.store_url),
        Vault.from_settings(env.settings),
        tenant_id="acme",
        connection_id=connection,
        app=app,
        parameters=parameters,
        credentials={k: SecretStr(v) for k, v in credentials.items()},
    )


def _import(connection: str) -> ImportSummary:
    return asyncio.run(full_import(ImportJob(tenant="acme", connection=connection)))


def test_kinto_full_import_then_updates_and_tombstoned_deletes(
    inlet_env: InletEnvFactory, kinto_collection: KintoServer
) -> None:
    env = inlet_env(records=1)
    kinto_collection.seed(1200)
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    _connect(env, "acme-kinto", "kinto", params, username="admin", password="s3cret")
    first = _import("acme-kinto")
    ids = [r["id"] for r in kinto_collection.list_all()]
    for record_id in ids[:3]:
        kinto_collection.update(record_id, {"name": "Renamed Person"})
    for record_id in ids[3:5]:
        kinto_collection.delete(record_id)
    second = _import("acme-kinto")
    assert (first.pages, first.created) == (2, 1200)
    assert (second.updated, second.deleted, second.unchanged) == (3, 2, 1195)
    kinto_rows = env.app_records(connection="acme-kinto", include_deleted="1")
    assert sum(1 for r in kinto_rows if not r["deleted"]) == 1198


def test_json_server_full_import_then_changes_and_hard_deletes(
    inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory
) -> None:
    env = inlet_env(records=1)
    server = json_server_factory(2500)
    _connect(env, "acme-json", "json_server", {"base_url": server.base_url})
    first = _import("acme-json")
    server.update_user(7, {"name": "Grace Hopper"})
    server.delete_user(8)
    server.add_user({"email": "new@example.org", "name": "New Person"})
    second = _import("acme-json")
    assert (first.pages, first.created, first.delivered) == (3, 2500, 2500)
    assert (second.created, second.updated, second.deleted) == (1, 1, 1)
    grace = next(r for r in env.app_records(connection="acme-json") if r["external_id"] == "7")
    assert grace["record"]["fullName"] == "Grace Hopper" and grace["record"]["lastName"] == "Hopper"
