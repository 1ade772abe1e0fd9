"""The Pipedrive simulator against the facts of api-specs/pipedrive.md beyond listing and recents
(connectors/pipedrive/CONFORMANCE.md): list filters and sorts, the collection, changelogs, webhooks (the API,
v1/v2 deliveries, retries, bans, removal, merges), and the per-token burst limits."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from connectors.pipedrive.simulator import CUSTOM_FIELD, DEFAULT_TOKEN, MAX_WEBHOOKS, OWNER, PipedriveSimulator
from tests.support.oauth import asgi_client, token_with_scope
from tests.support.receiver import Receiver

BASE = "https://acme.pipedrive.com"
HOOK = "https://inlet.example/webhooks/pipedrive"
DAY = 86_400


def client(sim: PipedriveSimulator, **headers: str) -> httpx.AsyncClient:
    auth = headers or {"x-api-token": DEFAULT_TOKEN}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=auth)


async def data(c: httpx.AsyncClient, path: str, **params: Any) -> Any:
    return (await c.get(path, params=params)).json()["data"]


async def hooked(sim: PipedriveSimulator, **spec: Any) -> Receiver:
    body = {"subscription_url": HOOK, "event_action": "*", "event_object": "person"}
    body |= {"http_auth_user": "inlet", "http_auth_password": "pw", **spec}
    async with client(sim) as c:
        created = await c.post("/api/v1/webhooks", json=body)
    assert created.status_code == 201, created.text
    return Receiver("pipedrive", "inlet:pw", now=sim.clock.time)


# -- list filters and sorts --------------------------------------------------------------------------


async def test_v1_sort_orders_by_first_level_fields() -> None:
    sim = PipedriveSimulator(8)
    sim.update(["3"])
    async with client(sim) as c:
        persons = await data(c, "/api/v1/persons", sort="update_time DESC, id ASC")
        refused = await c.get("/api/v1/persons", params={"sort": "owner.name ASC"})
    assert persons[0]["id"] == 3 and refused.status_code == 400 and refused.json()["success"] is False


async def test_v1_filters_first_char_user_id_and_a_saved_filter() -> None:
    sim = PipedriveSimulator(30)
    async with client(sim) as c:
        first = sim.people.all[0].first[0]
        by_char = await data(c, "/api/v1/persons", first_char=first.lower())
        mine, others = (
            await data(c, "/api/v1/persons", user_id=OWNER["id"]),
            await data(c, "/api/v1/persons", user_id=19),
        )
        with_phone = await data(c, "/api/v1/persons", filter_id=2)
        unknown = await c.get("/api/v1/persons", params={"filter_id": 99})
    assert by_char and {p["first_char"] for p in by_char} == {first.lower()}
    assert len(mine) == 30 and others is None and all(p["phone"][0]["value"] for p in with_phone)
    assert unknown.status_code == 404


async def test_v2_filters_owner_org_and_saved_filter_and_shapes_fields() -> None:
    sim = PipedriveSimulator(20)
    org = (await data(client(sim), "/api/v2/persons/1"))["org_id"]
    async with client(sim) as c:
        in_org = await data(c, "/api/v2/persons", org_id=org)
        nobody = await data(c, "/api/v2/persons", owner_id=19)
        narrow = await data(c, "/api/v2/persons", custom_fields=CUSTOM_FIELD, include_fields="open_deals_count")
        bad = await c.get("/api/v2/persons", params={"include_fields": "salary"})
        too_many = await c.get("/api/v2/persons", params={"custom_fields": ",".join(f"k{i}" for i in range(16))})
    assert in_org and {p["org_id"] for p in in_org} == {org} and nobody == []
    assert list(narrow[0]["custom_fields"]) == [CUSTOM_FIELD] and narrow[0]["open_deals_count"] == 0
    assert bad.status_code == too_many.status_code == 400


# -- the collection, changelogs ------------------------------------------------------------------------


async def test_the_collection_pages_v1_persons_by_cursor_for_admins_only() -> None:
    sim = PipedriveSimulator(7)
    async with client(sim) as c:
        first = (await c.get("/api/v1/persons/collection", params={"limit": 5})).json()
        rest = await data(c, "/api/v1/persons/collection", cursor=first["additional_data"]["next_cursor"])
    async with client(PipedriveSimulator(2, admin=False)) as c:
        refused = await c.get("/api/v1/persons/collection")
    assert [p["id"] for p in first["data"] + rest] == list(range(1, 8)) and "active_flag" in rest[0]
    assert refused.status_code == 403


async def test_the_changelog_lists_field_changes_newest_first() -> None:
    sim = PipedriveSimulator(3)
    old_title = sim.people.all[0].title
    sim.update(["1"], {"title": "CEO"})
    sim.update(["1"], {"email": "ada@new.example"})
    async with client(sim) as c:
        entries = await data(c, "/api/v1/persons/1/changelog")
        paged = (await c.get("/api/v1/persons/1/changelog", params={"limit": 1})).json()
    assert [(e["field_key"], e["new_value"]) for e in entries] == [("email", "ada@new.example"), ("job_title", "CEO")]
    assert entries[1]["old_value"] == old_title and entries[0]["actor_user_id"] == OWNER["id"]
    assert len(paged["data"]) == 1 and paged["additional_data"]["next_cursor"]


# -- webhooks ------------------------------------------------------------------------------------------


async def test_the_webhooks_api_creates_lists_and_deletes() -> None:
    sim = PipedriveSimulator(1)
    async with client(sim) as c:
        form = {"subscription_url": HOOK, "event_action": "change", "event_object": "person"}
        created = (await c.post("/api/v1/webhooks", data=form)).json()["data"]
        listed = (await c.get("/api/v1/webhooks")).json()["data"]
        removed = await c.delete(f"/api/v1/webhooks/{created['id']}")
        bad = await c.post("/api/v1/webhooks", json={**form, "event_action": "updated"})
    assert created["version"] == "2.0" and [h["id"] for h in listed] == [created["id"]]
    assert removed.json()["success"] is True and not sim.webhooks.hooks and bad.status_code == 400


async def test_a_user_has_at_most_40_webhooks() -> None:
    sim = PipedriveSimulator(1, burst_limit=100)
    for _ in range(MAX_WEBHOOKS):
        await hooked(sim)
    async with client(sim) as c:
        refused = await c.post(
            "/api/v1/webhooks", json={"subscription_url": HOOK, "event_action": "*", "event_object": "*"}
        )
    assert refused.status_code == 422


async def test_v2_deliveries_carry_basic_auth_and_the_changed_fields() -> None:
    sim = PipedriveSimulator(3)
    receiver = await hooked(sim)
    created = sim.create(1)
    sim.update(["1"], {"title": "CEO"})
    sim.delete(["2"])
    await sim.deliver(receiver.client())
    actions = [orjson.loads(r.body)["meta"]["action"] for r in receiver.requests]
    change = orjson.loads(receiver.requests[1].body)
    assert actions == ["create", "change", "delete"] and change["meta"]["attempt"] == 1
    assert set(change["previous"]) == {"job_title"} and change["data"]["job_title"] == "CEO"
    assert [(e.kind, e.external_id) for e in receiver.events()] == [
        ("upsert", created[0]),
        ("upsert", "1"),
        ("deleted", "2"),
    ]


async def test_v1_deliveries_name_their_event_and_count_retries_from_zero() -> None:
    sim = PipedriveSimulator(2)
    receiver = await hooked(sim, version="1.0", event_action="deleted")
    receiver.statuses = [500]
    sim.update(["1"])
    sim.delete(["2"])
    await sim.deliver(receiver.client())
    sim.advance(3)
    await sim.deliver(receiver.client())
    bodies = [orjson.loads(r.body) for r in receiver.requests]
    assert [(b["event"], b["retry"]) for b in bodies] == [("deleted.person", 0), ("deleted.person", 1)]


async def test_failed_deliveries_are_retried_after_3_30_and_150_seconds() -> None:
    sim = PipedriveSimulator(2)
    receiver = await hooked(sim)
    receiver.statuses = [503] * 10
    sim.create(1)
    times = []
    for _ in range(200):
        if await sim.deliver(receiver.client()):
            times.append(round(sim.clock.offset))
        sim.advance(1)
    assert times == [0, 3, 33, 183]


async def test_ten_failed_first_attempts_ban_the_webhook_for_30_minutes() -> None:
    sim = PipedriveSimulator(12)
    receiver = await hooked(sim)
    receiver.statuses = [500] * 10
    sim.update([str(i) for i in range(1, 11)])
    await sim.deliver(receiver.client())
    sim.update(["11"])  # during the ban: lost
    sim.advance(1801)
    sim.update(["12"])
    await sim.deliver(receiver.client())
    delivered = [orjson.loads(r.body)["meta"]["entity_id"] for r in receiver.accepted()]
    assert "11" not in delivered and "12" in delivered


async def test_three_days_without_a_successful_delivery_delete_the_webhook() -> None:
    sim = PipedriveSimulator(2)
    receiver = await hooked(sim)
    receiver.statuses = [500] * 10
    sim.create(1)
    await sim.deliver(receiver.client())
    sim.advance(3 * DAY + 1)
    async with client(sim) as c:
        listed = (await c.get("/api/v1/webhooks")).json()["data"]
    assert listed == []


async def test_a_merge_arrives_as_a_delete_and_a_change_in_v2() -> None:
    sim = PipedriveSimulator(3)
    receiver = await hooked(sim)
    sim.merge("1", ["2"])
    await sim.deliver(receiver.client())
    metas = [orjson.loads(r.body)["meta"] for r in receiver.requests]
    assert [(m["action"], m["entity_id"]) for m in metas] == [("delete", "2"), ("change", "1")]
    assert metas[0]["merged_to_id"] == "1" and metas[1]["merged_from_id"] == "2"
    assert [(e.kind, e.external_id) for e in receiver.events()] == [("deleted", "2"), ("upsert", "1")]


async def test_deliveries_spend_no_api_tokens() -> None:
    sim = PipedriveSimulator(2)
    receiver = await hooked(sim)
    before = sim.budget.used()
    sim.create(3)
    await sim.deliver(receiver.client())
    assert sim.budget.used() == before and len(receiver.requests) == 3


# -- limits ----------------------------------------------------------------------------------------------


async def test_oauth_tokens_have_their_own_burst_window_and_no_daily_requests_header() -> None:
    sim = PipedriveSimulator(2, burst_limit=1, oauth_burst_limit=2)
    async with asgi_client(sim) as http:
        bearer = await token_with_scope(http, sim, "contacts:read")
        oauth = [await http.get("/api/v2/persons", headers={"Authorization": f"Bearer {bearer}"}) for _ in range(2)]
    async with client(sim) as c:
        tokened = [await c.get("/api/v2/persons") for _ in range(2)]
    assert [r.status_code for r in oauth] == [200, 200] and [r.status_code for r in tokened] == [200, 429]
    assert "x-daily-requests-left" not in oauth[0].headers and tokened[0].headers["x-daily-requests-left"] == "10000"
    assert oauth[0].headers["x-ratelimit-limit"] == "2"


@pytest.mark.parametrize("path", ["/api/v1/persons", "/v1/persons"])
async def test_the_daily_budget_starts_again_at_midnight(path: str) -> None:
    sim = PipedriveSimulator(2, daily_tokens=20)
    async with client(sim) as c:
        statuses = [(await c.get(path)).status_code for _ in range(2)]
        sim.advance(DAY)
        later = await c.get(path)
    assert statuses == [200, 429] and later.status_code == 200
