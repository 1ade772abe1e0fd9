"""Full imports from real, independently written apps (Kinto, json-server) through the Prefect flow."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import InletEnvFactory
from tests.integration.conftest import JsonServerFactory
from tests.support.connections import connect, import_full
from tests.support.real_apps import KintoServer

pytestmark = pytest.mark.real_app


def test_kinto_full_import_then_updates_and_tombstoned_deletes(
    inlet_env: InletEnvFactory, kinto_collection: KintoServer
) -> None:
    env = inlet_env(records=1)
    kinto_collection.seed(1200)
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    connect(env, "acme-kinto", "kinto", params, username="admin", password="s3cret")
    first = import_full("acme-kinto")
    ids = [r["id"] for r in kinto_collection.list_all()]
    for record_id in ids[:3]:
        kinto_collection.update(record_id, {"name": "Renamed Person"})
    for record_id in ids[3:5]:
        kinto_collection.delete(record_id)
    second = import_full("acme-kinto")
    assert (first.pages, first.created) == (2, 1200)
    assert (second.updated, second.deleted, second.unchanged) == (3, 2, 1195)
    kinto_rows = env.app_records(connection="acme-kinto", include_deleted="1")
    assert sum(1 for r in kinto_rows if not r["deleted"]) == 1198


def test_json_server_full_import_then_changes_and_hard_deletes(
    inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory
) -> None:
    env = inlet_env(records=1)
    server = json_server_factory(2500)
    connect(env, "acme-json", "json_server", {"base_url": server.base_url})
    first = import_full("acme-json")
    server.update_user(7, {"name": "Grace Hopper"})
    server.delete_user(8)
    server.add_user({"email": "new@example.org", "name": "New Person"})
    second = import_full("acme-json")
    assert (first.pages, first.created, first.delivered) == (3, 2500, 2500)
    assert (second.created, second.updated, second.deleted) == (1, 1, 1)
    grace = next(r for r in env.app_records(connection="acme-json") if r["external_id"] == "7")
    assert grace["record"]["fullName"] == "Grace Hopper" and grace["record"]["lastName"] == "Hopper"


def _poll_and_apply(connection: str) -> tuple[object, object]:
    from flows.incremental_import import incremental_import
    from flows.poll_changes import poll_changes

    polled = asyncio.run(poll_changes("acme", connection))
    return polled, asyncio.run(incremental_import("acme", connection))


def test_kinto_changes_reach_the_app_by_since_and_tombstones(
    inlet_env: InletEnvFactory, kinto_collection: KintoServer
) -> None:
    env = inlet_env(records=1)
    kinto_collection.seed(40)
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    connect(env, "acme-kinto", "kinto", params, username="admin", password="s3cret")
    import_full("acme-kinto")
    _poll_and_apply("acme-kinto")  # the first poll sets the watermark
    ids = [r["id"] for r in kinto_collection.list_all()]
    kinto_collection.update(ids[0], {"name": "Renamed Person"})
    kinto_collection.delete(ids[1])
    kinto_collection.create({"email": "new@example.org", "name": "New Person"})
    polled, applied = _poll_and_apply("acme-kinto")
    source = {r["id"]: r for r in kinto_collection.list_all()}
    app = {r["external_id"]: r["record"] for r in env.app_records(connection="acme-kinto")}
    assert (applied.created, applied.updated, applied.deleted) == (1, 1, 1)  # type: ignore[attr-defined]
    assert set(app) == set(source) and app[ids[0]]["fullName"] == "Renamed Person"


def test_json_server_changes_reach_the_app_by_a_full_scan_diff(
    inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory
) -> None:
    env = inlet_env(records=1)
    server = json_server_factory(300)
    connect(env, "acme-json", "json_server", {"base_url": server.base_url})
    import_full("acme-json")
    server.update_user(5, {"name": "Ada Lovelace"})
    server.delete_user(6)
    server.add_user({"email": "new@example.org", "name": "New Person"})
    polled, applied = _poll_and_apply("acme-json")
    app = {r["external_id"]: r["record"] for r in env.app_records(connection="acme-json")}
    assert polled.mode == "scan" and (polled.upserts, polled.deletions) == (2, 1)  # type: ignore[attr-defined]
    assert (applied.created, applied.updated, applied.deleted) == (1, 1, 1)  # type: ignore[attr-defined]
    assert len(app) == 300 and "6" not in app and app["5"]["lastName"] == "Lovelace"
