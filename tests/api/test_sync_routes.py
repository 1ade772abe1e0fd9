"""The API's continuity routes over real HTTP: a connection's sync policy, pause and resume, a reconciliation or
a full import out of turn (made due in the store, claimed by the scheduler's next tick), scopes, problem details,
and one tenant never reaching another's connection."""

from __future__ import annotations

import pytest

from inlet.store import claim_due, import_completed, import_started
from tests.api.conftest import ApiWorld
from tests.api.test_contract import problem

CONNECTION = "acme-sync"
SYNC = f"/tenants/acme/connections/{CONNECTION}"


@pytest.fixture(scope="module")
def imported(world: ApiWorld) -> str:
    """acme's connection, made through the API, whose first full import has completed."""
    body = world.hubspot(id=CONNECTION, check=False)
    created = world.call("POST", "/tenants/acme/connections", json=body, scope="write")
    assert created.status_code == 201, created.text
    import_started(world.inst.engine, CONNECTION, "1700000000000")  # as full_import records its position
    import_completed(world.inst.engine, CONNECTION, "users")
    claim_due(world.inst.engine)  # whatever the other connections owe is claimed here, not in these tests
    return CONNECTION


def _due(world: ApiWorld) -> list[tuple[str, str]]:
    return [(d.connection, d.work) for d in claim_due(world.inst.engine) if d.tenant == "acme"]


def test_the_sync_policy_is_read_and_changed_and_what_is_left_out_stays(world: ApiWorld, imported: str) -> None:
    before = world.call("GET", f"{SYNC}/sync", scope="read")
    assert before.status_code == 200, before.text
    assert before.json()["poll_every"] == 300 and before.json()["state"] == "active"
    assert before.json()["last_poll_error"] == "-"
    changed = world.call("PATCH", f"{SYNC}/sync", json={"poll_seconds": 120, "webhooks": True}, scope="write")
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["poll_every"], body["reconcile_every"], body["change_source"]) == (
        120,
        86_400,
        "webhook (set up by the operator) + poll",
    )
    again = world.call("PATCH", f"{SYNC}/sync", json={"reconcile_seconds": 3600, "webhooks": False}, scope="write")
    assert (again.json()["poll_every"], again.json()["reconcile_every"]) == (120, 3600)
    assert again.json()["change_source"] == "poll"


def test_a_bad_policy_is_a_problem_and_changes_nothing(world: ApiWorld, imported: str) -> None:
    before = world.call("GET", f"{SYNC}/sync", scope="read").json()
    for bad in ({"poll_seconds": 1}, {"reconcile_seconds": 5}, {"poll_seconds": "soon"}, {"paused": True}):
        response = world.call("PATCH", f"{SYNC}/sync", json=bad, scope="write")
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert world.call("GET", f"{SYNC}/sync", scope="read").json() == before


def test_pause_stops_the_scheduler_submitting_and_resume_starts_it_again(world: ApiWorld, imported: str) -> None:
    asked = world.call("POST", f"{SYNC}/reconciliations", scope="write")
    assert asked.status_code == 202 and asked.json()["requested"] == "reconcile"
    paused = world.call("POST", f"{SYNC}/pause", scope="write")
    assert paused.status_code == 200 and paused.json()["state"].startswith("paused")
    assert _due(world) == []  # paused: nothing is submitted, the request waits
    resumed = world.call("POST", f"{SYNC}/resume", scope="write")
    assert resumed.json()["state"] == "active" and resumed.json()["requested"] == "reconcile"
    assert _due(world) == [(CONNECTION, "reconcile")]
    assert _due(world) == [] and world.call("GET", f"{SYNC}/sync", scope="read").json()["requested"] is None


def test_a_full_import_asked_for_is_the_next_ticks_work(world: ApiWorld, imported: str) -> None:
    asked = world.call("POST", f"{SYNC}/sync/imports", scope="write")
    assert asked.status_code == 202 and asked.json()["requested"] == "import"
    assert _due(world) == [(CONNECTION, "import")]
    assert _due(world) == []


def test_reading_needs_a_key_and_changing_needs_the_write_scope(world: ApiWorld, imported: str) -> None:
    with world.client(scope=None) as anonymous:
        problem(anonymous.get(f"{SYNC}/sync"), 401, "unauthenticated")
        problem(anonymous.post(f"{SYNC}/pause"), 401, "unauthenticated")
    for method, path in (
        ("PATCH", f"{SYNC}/sync"),
        ("POST", f"{SYNC}/pause"),
        ("POST", f"{SYNC}/resume"),
        ("POST", f"{SYNC}/reconciliations"),
        ("POST", f"{SYNC}/sync/imports"),
    ):
        problem(world.call(method, path, json={}, scope="read"), 403, "forbidden")
    assert world.call("GET", f"{SYNC}/sync", scope="read").json()["state"] == "active"


def test_one_tenant_cannot_reach_anothers_connection(world: ApiWorld, imported: str) -> None:
    elsewhere = f"/tenants/globex/connections/{CONNECTION}"
    problem(world.call("GET", f"{elsewhere}/sync"), 404, "not-found")
    for path in ("/pause", "/reconciliations", "/sync/imports"):
        problem(world.call("POST", elsewhere + path, scope="write"), 404, "not-found")
    problem(world.call("PATCH", f"{elsewhere}/sync", json={"poll_seconds": 60}, scope="write"), 404, "not-found")
    problem(world.call("POST", "/tenants/acme/connections/no-such/pause", scope="write"), 404, "not-found")
    after = world.call("GET", f"{SYNC}/sync", scope="read").json()
    assert after["state"] == "active" and after["requested"] is None


def test_a_connect_session_reads_its_own_tenants_sync_and_changes_nothing(world: ApiWorld, imported: str) -> None:
    body = {"connectors": ["hubspot"], "parameters": {"hubspot": {"base_url": world.sim_url}}}
    created = world.call("POST", "/tenants/globex/connect-sessions", json=body, scope="write")
    assert created.status_code == 201, created.text
    with world.client(token=created.json()["token"]) as globex:
        problem(globex.get(f"{SYNC}/sync"), 403, "forbidden")
        problem(globex.post(f"{SYNC}/pause"), 403, "forbidden")
        problem(globex.patch(f"{SYNC}/sync", json={"poll_seconds": 60}), 403, "forbidden")
    created = world.call("POST", "/tenants/acme/connect-sessions", json=body, scope="write")
    with world.client(token=created.json()["token"]) as acme:
        assert acme.get(f"{SYNC}/sync").status_code == 200
        problem(acme.post(f"{SYNC}/pause"), 403, "forbidden")  # the team's backend pauses, not the tenant's browser
    assert world.call("GET", f"{SYNC}/sync", scope="read").json()["state"] == "active"
