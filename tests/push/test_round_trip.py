"""Round trips with real processes: the team's app (the demo app plus the pushes this test makes for it)
and real external apps (json-server, Kinto). What the app pushes is written to the external app and linked;
what comes back is recognised as an echo and never delivered to the app again; an external change is imported
back; and at the end the app's state equals the source's.

The app's state is modelled as the app keeps it (tests/support/team_app.py). The SaaS simulators' round trips
are in test_saas_round_trip.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from inlet.store import link_for, open_store
from tests.conftest import SIM_TOKEN, InletEnvFactory
from tests.integration.conftest import JsonServerFactory
from tests.support.connections import connect, import_full
from tests.support.real_apps import KintoServer
from tests.support.team_app import TeamApp, run_push

pytestmark = pytest.mark.real_app


def test_json_server_round_trip_with_no_echo(
    inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory
) -> None:
    env = inlet_env(records=1)
    server = json_server_factory(3)
    connect(env, "acme-json", "json_server", {"base_url": server.base_url})
    app = TeamApp(env, "acme-json")
    assert import_full("acme-json").delivered == 3
    app.take_deliveries()

    # The app creates a record: written to json-server and linked; the import hears it as an echo.
    app.push({"app_id": "app-1", "type": "created", "record": {"email": "ada@x.org", "fullName": "Ada Lovelace"}})
    assert run_push("acme-json").created == 1
    link = link_for(open_store(env.settings.store_url), "acme-json", "users", "app-1")
    assert link is not None and link.external_id is not None
    with server.client() as c:
        assert c.get(f"/users/{link.external_id}").json()["name"] == "Ada Lovelace"
    echoed = import_full("acme-json")
    assert (echoed.created, echoed.updated, echoed.echo_suppressed) == (0, 0, 1)
    assert app.take_deliveries() == 0

    # An external update comes back, naming the app's record.
    server.update_user(int(link.external_id), {"name": "Ada King"})
    assert import_full("acme-json").updated == 1
    assert app.take_deliveries() == 1 and app.records["app-1"]["fullName"] == "Ada King"

    # The app updates and deletes records it got from the import.
    app.push(
        {
            "app_id": "ext-1",
            "external_id": "1",
            "type": "updated",
            "record": {"email": "user1@example.org", "fullName": "Grace Hopper"},
        },
        {"app_id": "ext-2", "external_id": "2", "type": "deleted"},
    )
    pushed = run_push("acme-json")
    assert (pushed.updated, pushed.deleted, pushed.failed) == (1, 1, 0)
    final = import_full("acme-json")
    assert (final.updated, final.deleted, final.echo_suppressed) == (0, 0, 1)
    assert app.take_deliveries() == 0

    with server.client() as c:
        source = {u["email"]: u["name"] for u in c.get("/users").json()}
    assert app.state() == source


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def test_kinto_round_trip_with_conflicts_resolved_by_the_later_writer(
    inlet_env: InletEnvFactory, kinto_collection: KintoServer
) -> None:
    env = inlet_env(records=1)
    kinto_collection.seed(2)
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    connect(env, "acme-kinto", "kinto", params, username="admin", password="s3cret")
    app = TeamApp(env, "acme-kinto")
    assert import_full("acme-kinto").delivered == 2
    app.take_deliveries()
    first, second = kinto_collection.list_all()

    app.push({"app_id": "app-1", "type": "created", "record": {"email": "ada@x.org", "fullName": "Ada Lovelace"}})
    assert run_push("acme-kinto").created == 1
    assert import_full("acme-kinto").echo_suppressed == 1 and app.take_deliveries() == 0

    # Both sides change the same field; the external change is the later one: it wins, nothing is written.
    ext = kinto_collection.update(first["id"], {"name": "Ext Name"})
    older = _iso(ext["last_modified"] - 60_000)
    app.push(_update(first, "App Name", older))
    lost = run_push("acme-kinto")
    assert (lost.written, lost.unchanged) == (0, 1)
    assert [(c["field"], c["winner"], c["rule"]) for c in lost.conflicts] == [("full_name", "external", "last_writer")]
    assert import_full("acme-kinto").updated == 1 and app.take_deliveries() == 1  # the app gets the winner

    # Again, with the app's change the later one: it wins and is written; its echo is not delivered back.
    ext = kinto_collection.update(second["id"], {"name": "Ext Two"})
    app.push(_update(second, "App Two", _iso(ext["last_modified"] + 1_000)))
    won = run_push("acme-kinto")
    assert (won.updated, [c["winner"] for c in won.conflicts]) == (1, ["app"])
    echoed = import_full("acme-kinto")
    assert (echoed.updated, echoed.echo_suppressed) == (0, 1)

    app.push({"app_id": "app-1", "type": "deleted"})
    assert run_push("acme-kinto").deleted == 1
    assert import_full("acme-kinto").deleted == 0  # the app made that deletion: it is not told about it
    app.take_deliveries()
    source = {r["email"]: r["name"] for r in kinto_collection.list_all()}
    assert app.state() == source and source[second["email"]] == "App Two" and "ada@x.org" not in source


def _update(record: dict[str, Any], name: str, occurred_at: str) -> dict[str, Any]:
    return {
        "app_id": f"ext-{record['id']}",
        "external_id": record["id"],
        "type": "updated",
        "occurred_at": occurred_at,
        "record": {"email": record["email"], "fullName": name},
    }


def test_hubspot_simulator_round_trip(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=2)
    app = TeamApp(env, "acme-hubspot")
    assert import_full("acme-hubspot").delivered == 2
    app.take_deliveries()
    app.push({"app_id": "app-1", "type": "created", "record": {"email": "ada@x.org", "fullName": "Ada Lovelace"}})
    assert run_push("acme-hubspot").created == 1
    assert import_full("acme-hubspot").echo_suppressed == 1 and app.take_deliveries() == 0
    app.push({"app_id": "app-1", "type": "updated", "record": {"email": "ada@x.org", "fullName": "Ada King"}})
    assert run_push("acme-hubspot").updated == 1
    echoed = import_full("acme-hubspot")
    assert (echoed.updated, echoed.echo_suppressed) == (0, 1) and app.take_deliveries() == 0
    app.push({"app_id": "app-1", "type": "deleted"})
    assert run_push("acme-hubspot").deleted == 1
    assert import_full("acme-hubspot").deleted == 0
    app.take_deliveries()
    source = {
        c["properties"]["email"]: f"{c['properties']['firstname']} {c['properties']['lastname']}"
        for c in httpx.get(
            f"{env.simulator}/crm/v3/objects/contacts",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {SIM_TOKEN}"},
            timeout=10,
        ).json()["results"]
    }
    assert app.state() == source and "ada@x.org" not in source
