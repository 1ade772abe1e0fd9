"""The first poll after a full import, end to end on real processes: Kinto, json-server and two SaaS simulators
(HubSpot, Pipedrive). Creates, updates and deletes made after the import, and changes made while it enumerates,
reach the team's app through one poll run as the scheduler submits it (a `sync-polls` batch), with no second
full import of the connection.

The app's final state is compared record by record with an oracle: a second connection to the same source,
full-imported afterwards into the same app. Both hold the same mapped record for every external id, or the
poll lost something."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from flows.scheduler import sync_polls
from inlet.local import free_port, start_process, stop_process
from inlet.service import open_installation, sync_of
from inlet.store import Connection, open_store
from tests.conftest import InletEnv, InletEnvFactory
from tests.integration.conftest import JsonServerFactory
from tests.support.connections import connect, import_full
from tests.support.real_apps import KintoServer

pytestmark = pytest.mark.real_app
TENANT = "acme"


def _first_poll(env: InletEnv, connection: str) -> str:
    """One poll as the scheduler submits it, in a batch (it applies the inbox itself); the poll's mode."""
    with Session(open_store(env.settings.store_url)) as session:
        app = session.get_one(Connection, connection).app
    asyncio.run(sync_polls(app, connection, [(TENANT, connection, "users")]))
    row = sync_of(open_installation(env.settings), TENANT, connection)
    assert row["imported"] != "never" and row["drift"] == {}
    return str(row["last_poll"]).rsplit("(", 1)[-1].rstrip(")")


def _app_state(env: InletEnv, connection: str) -> dict[str, Any]:
    return {r["external_id"]: r["record"] for r in env.app_records(connection=connection)}


def _assert_app_equals_source(
    env: InletEnv, connection: str, app: str, parameters: dict[str, str], **secrets: str
) -> dict[str, Any]:
    """The app's records of `connection`, each equal to what a fresh full import of the source gives now."""
    oracle = f"{connection}-oracle"
    connect(env, oracle, app, parameters, **secrets)
    import_full(oracle)
    polled, fresh = _app_state(env, connection), _app_state(env, oracle)
    assert sorted(polled) == sorted(fresh), (set(polled) ^ set(fresh), "ids differ between the app and the source")
    assert [i for i in fresh if polled[i] != fresh[i]] == []
    assert env.app_stats()["duplicates"] == 0
    return polled


def test_kinto(inlet_env: InletEnvFactory, kinto_collection: KintoServer) -> None:
    env = inlet_env(records=1)
    kinto_collection.seed(30)
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    connect(env, "acme-kinto", "kinto", params, username="admin", password="s3cret")
    import_full("acme-kinto")
    ids = sorted(_app_state(env, "acme-kinto"))
    for record_id in ids[:3]:
        kinto_collection.update(record_id, {"name": "Renamed Person"})
    for record_id in ids[3:6]:
        kinto_collection.delete(record_id)
    new = kinto_collection.create({"email": "new@example.org", "name": "New Person"})
    assert _first_poll(env, "acme-kinto") == "changes"
    final = _assert_app_equals_source(env, "acme-kinto", "kinto", params, username="admin", password="s3cret")
    assert len(final) == 28 and new["id"] in final and not set(ids[3:6]) & set(final)


def test_json_server(inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory) -> None:
    env = inlet_env(records=1)
    server = json_server_factory(40)
    params = {"base_url": server.base_url}
    connect(env, "acme-json", "json_server", params)
    import_full("acme-json")
    server.update_user(5, {"name": "Ada Lovelace"})
    server.update_user(9, {"name": "Grace Hopper"})
    server.delete_user(6)
    server.delete_user(7)
    server.add_user({"email": "new@example.org", "name": "New Person"})
    assert _first_poll(env, "acme-json") == "scan"  # no change position: a scan diff, deletions included
    final = _assert_app_equals_source(env, "acme-json", "json_server", params)
    assert len(final) == 39 and "6" not in final and final["5"]["lastName"] == "Lovelace"


def test_hubspot(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=40)
    import_full("acme-hubspot")
    ids = sorted(_app_state(env, "acme-hubspot"))
    env.sim("mutate", {"create": 3, "update": ids[:4], "delete": ids[4:8]})
    assert _first_poll(env, "acme-hubspot") == "changes"
    parameters = {"base_url": env.simulator}
    final = _assert_app_equals_source(env, "acme-hubspot", "hubspot", parameters, token=_hubspot_token())
    assert len(final) == 39 and not set(ids[4:8]) & set(final)


@pytest.fixture
def pipedrive(inlet_env: InletEnvFactory) -> Iterator[tuple[InletEnv, str]]:
    """The inlet environment and a Pipedrive simulator (a process) with 40 persons, connected as acme-pipedrive."""
    env = inlet_env(records=1)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "connectors.pipedrive.simulator", "--port", str(port), "--records", "40"]
    proc = start_process([*command, "--token", PIPEDRIVE_TOKEN], url + "/_sim/stats")
    try:
        connect(env, "acme-pipedrive", "pipedrive", {"base_url": url}, api_token=PIPEDRIVE_TOKEN)
        yield env, url
    finally:
        stop_process(proc)


PIPEDRIVE_TOKEN = "pipedrive-test-token-51c2"


def test_pipedrive(pipedrive: tuple[InletEnv, str]) -> None:
    env, url = pipedrive
    import_full("acme-pipedrive")
    ids = sorted(_app_state(env, "acme-pipedrive"))
    time.sleep(1.1)  # Pipedrive's update_time has whole seconds: a change in the import's second is not "since"
    httpx.post(f"{url}/_sim/mutate", json={"create": 2, "update": ids[:3], "delete": ids[3:6]}).raise_for_status()
    assert _first_poll(env, "acme-pipedrive") in ("changes", "first-pull")
    final = _assert_app_equals_source(env, "acme-pipedrive", "pipedrive", {"base_url": url}, api_token=PIPEDRIVE_TOKEN)
    assert len(final) == 39 and not set(ids[3:6]) & set(final)


def test_changes_made_while_the_full_import_enumerates_are_caught_by_the_first_poll(
    inlet_env: InletEnvFactory,
) -> None:
    env = inlet_env(records=300)  # three pages of 100
    listed = httpx.get(
        f"{env.simulator}/crm/v3/objects/contacts?limit=10", headers={"Authorization": f"Bearer {_hubspot_token()}"}
    )
    first_page = [str(r["id"]) for r in listed.json()["results"]]
    env.sim("reset", {})
    env.sim("faults", {"slow_seconds": 0.5})
    importing = threading.Thread(target=import_full, args=("acme-hubspot",))
    importing.start()
    while env.sim("stats")["list_requests"] < 2:  # the second page is asked for: the first one was read as it was
        assert importing.is_alive(), "the import ended before its second page was asked for"
        time.sleep(0.05)
    changed = env.sim("mutate", {"create": 2, "update": first_page[:4], "delete": first_page[4:8]})
    assert importing.is_alive(), "the import must still be enumerating when the source changes"
    importing.join()
    env.sim("reset", {})
    before = _app_state(env, "acme-hubspot")
    assert set(first_page[4:8]) <= set(before)  # the import had read them before they were deleted
    assert _first_poll(env, "acme-hubspot") == "changes"
    final = _assert_app_equals_source(
        env, "acme-hubspot", "hubspot", {"base_url": env.simulator}, token=_hubspot_token()
    )
    assert not set(first_page[4:8]) & set(final) and set(changed["created"]) <= set(final)
    assert [final[i] for i in first_page[:4]] != [before[i] for i in first_page[:4]]


def _hubspot_token() -> str:
    from tests.conftest import SIM_TOKEN

    return SIM_TOKEN
