"""The API's poison inbox routes over real HTTP: a tenant's poison events listed page by page, put back into the
drain and dropped, through the service layer the CLI uses; scopes, problem details, bad choices refused with
nothing changed, and one tenant never reaching another's events."""

from __future__ import annotations

import base64

import pytest
from sqlmodel import Session, col, delete, select

from inlet.service import OPERATOR, create_connect_session
from inlet.store import HeardChange, InboxEvent, inbox, quarantine_events
from tests.api.conftest import ApiWorld
from tests.api.test_contract import problem

CONNECTION = "acme-inbox"
POISON = "/tenants/acme/inbox/poison"


@pytest.fixture
def poisoned(world: ApiWorld) -> list[int]:
    """Three poison events of acme's connection and one change still waiting to be applied; the ids of the three."""
    if world.call("GET", f"/tenants/acme/connections/{CONNECTION}").status_code == 404:
        created = world.call("POST", "/tenants/acme/connections", json=world.hubspot(id=CONNECTION, check=False))
        assert created.status_code == 201, created.text
    with Session(world.inst.engine) as session:  # each test starts from the same inbox
        session.execute(delete(InboxEvent).where(col(InboxEvent.connection_id) == CONNECTION))
        session.commit()
    changes = [HeardChange("acme", CONNECTION, "users", f"p{n}", "upsert", "webhook") for n in range(4)]
    inbox.add(world.inst.engine, changes)
    with Session(world.inst.engine) as session:
        query = select(InboxEvent.id).where(col(InboxEvent.connection_id) == CONNECTION)
        ids = sorted(i for i in session.exec(query).all() if i is not None)
    quarantine_events(world.inst.engine, {i: "the app rejects this id for good" for i in ids[:3]})
    return ids[:3]


def _listed(world: ApiWorld, tenant: str = "acme") -> list[int]:
    return [e["id"] for e in world.call("GET", f"/tenants/{tenant}/inbox/poison", scope="read").json()["items"]]


def test_poison_events_are_listed_page_by_page_with_their_reason(world: ApiWorld, poisoned: list[int]) -> None:
    first = world.call("GET", POISON, params={"limit": 2}, scope="read")
    assert first.status_code == 200, first.text
    page = first.json()
    assert [e["id"] for e in page["items"]] == poisoned[:2] and page["next_cursor"]
    assert page["items"][0]["reason"] == "the app rejects this id for good"
    assert (page["items"][0]["connection_id"], page["items"][0]["external_id"]) == (CONNECTION, "p0")
    rest = world.call("GET", POISON, params={"limit": 2, "cursor": page["next_cursor"]}, scope="read").json()
    assert [e["id"] for e in rest["items"]] == poisoned[2:] and rest["next_cursor"] is None
    only = world.call("GET", POISON, params={"connection": CONNECTION}, scope="read").json()
    assert [e["id"] for e in only["items"]] == poisoned
    problem(world.call("GET", POISON, params={"cursor": "not-ours"}), 422, "invalid-input")


def test_a_retried_event_goes_back_into_the_drain_and_a_dropped_one_is_gone(
    world: ApiWorld, poisoned: list[int]
) -> None:
    retried = world.call("POST", f"{POISON}/retry", json={"ids": [poisoned[0]]}, scope="write")
    assert retried.status_code == 200 and retried.json() == {"events": 1}
    assert inbox.depth(world.inst.engine, CONNECTION) == 2  # the change still waiting, and the retried one
    dropped = world.call("POST", f"{POISON}/drop", json={"ids": [poisoned[1]]}, scope="write")
    assert dropped.json() == {"events": 1} and _listed(world) == [poisoned[2]]
    assert world.call("DELETE", f"{POISON}/{poisoned[2]}", scope="write").status_code == 204
    problem(world.call("DELETE", f"{POISON}/{poisoned[2]}", scope="write"), 404, "not-found")
    assert _listed(world) == [] and inbox.depth(world.inst.engine, CONNECTION) == 2


def test_a_choice_that_is_not_explicit_is_refused_and_changes_nothing(world: ApiWorld, poisoned: list[int]) -> None:
    bad_choices: list[dict[str, object]] = [{}, {"ids": []}, {"ids": [poisoned[0]], "all": True}, {"all": False}]
    for bad in [*bad_choices, {"ids": [0]}, {"ids": ["x"]}, {"ids": [2**70]}, {"all": True, "everything": 1}]:
        for action in ("retry", "drop"):
            problem(world.call("POST", f"{POISON}/{action}", json=bad, scope="write"), 422, "invalid-request")
    problem(
        world.call("POST", f"{POISON}/drop", json={"ids": list(range(1, 502))}, scope="write"), 422, "invalid-request"
    )
    assert _listed(world) == poisoned


def test_retrying_all_puts_back_only_the_tenants_own_events(world: ApiWorld, poisoned: list[int]) -> None:
    assert world.call("POST", "/tenants/globex/inbox/poison/drop", json={"ids": poisoned}, scope="write").json() == {
        "events": 0
    }
    assert world.call("POST", "/tenants/globex/inbox/poison/retry", json={"all": True}, scope="write").json() == {
        "events": 0
    }
    problem(world.call("DELETE", f"/tenants/globex/inbox/poison/{poisoned[0]}", scope="write"), 404, "not-found")
    assert _listed(world, "globex") == [] and _listed(world) == poisoned
    problem(world.call("GET", "/tenants/globex/inbox/poison", params={"connection": CONNECTION}), 404, "not-found")
    problem(world.call("GET", "/tenants/nobody/inbox/poison"), 404, "not-found")
    problem(
        world.call("POST", "/tenants/nobody/inbox/poison/retry", json={"all": True}, scope="write"), 404, "not-found"
    )
    assert world.call("POST", f"{POISON}/retry", json={"all": True}, scope="write").json() == {"events": 3}
    assert _listed(world) == [] and inbox.depth(world.inst.engine, CONNECTION) == 4


def test_reading_needs_a_backend_key_and_changing_needs_the_write_scope(world: ApiWorld, poisoned: list[int]) -> None:
    with world.client(scope=None) as anonymous:
        problem(anonymous.get(POISON), 401, "unauthenticated")
    problem(world.call("POST", f"{POISON}/retry", json={"all": True}, scope="read"), 403, "forbidden")
    problem(world.call("POST", f"{POISON}/drop", json={"all": True}, scope="read"), 403, "forbidden")
    problem(world.call("DELETE", f"{POISON}/{poisoned[0]}", scope="read"), 403, "forbidden")
    _, token = create_connect_session(world.inst, OPERATOR, "acme", ["hubspot"])  # not the API's: no rate limit spent
    with world.client(token=token) as acme_browser:
        problem(acme_browser.get(POISON), 403, "forbidden")  # the team's backend handles poison, not the tenant
    assert _listed(world) == poisoned


def test_an_id_or_cursor_out_of_range_is_a_problem_and_changes_nothing(world: ApiWorld, poisoned: list[int]) -> None:
    huge = str(2**70)
    for path in (f"{POISON}/{huge}", f"{POISON}/0", f"{POISON}/x", f"/tenants/acme/quarantine/{huge}"):
        problem(world.call("DELETE", path, scope="write"), 422, "invalid-request")
    cursor = base64.urlsafe_b64encode(huge.encode()).decode().rstrip("=")  # decodes to a number SQL cannot hold
    problem(world.call("GET", POISON, params={"cursor": cursor}), 422, "invalid-input")
    problem(world.call("GET", "/tenants/acme/quarantine", params={"cursor": cursor}), 422, "invalid-input")
    assert _listed(world) == poisoned
