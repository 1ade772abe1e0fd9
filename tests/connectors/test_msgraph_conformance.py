"""The Microsoft Graph simulator against the facts of api-specs/msgraph.md beyond listing and delta basics
(connectors/msgraph/CONFORMANCE.md): subscriptions with their handshake, notifications and lifecycle events,
`$filter`, `$search`, `$orderby`, `$expand`, `$select` narrowing delta, token ages, limits and permissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from connectors.msgraph.simulator import DEFAULT_TOKEN, GraphSimulator
from tests.support.oauth import asgi_client, token_with_scope
from tests.support.receiver import Receiver

BASE = "https://graph.microsoft.com"
HOOK = "https://inlet.example/webhooks/msgraph"
LIFECYCLE = "https://inlet.example/webhooks/msgraph/lifecycle"
SECRET = "s3cr3t-client-state"
EVENTUAL = {"ConsistencyLevel": "eventual"}
DAY = 86_400


def client(sim: GraphSimulator) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=headers)


async def get(sim: GraphSimulator, url: str, **headers: str) -> tuple[int, Any]:
    async with client(sim) as c:
        answer = await c.get(url, headers=headers)
    return answer.status_code, answer.json()


def in_days(sim: GraphSimulator, days: float) -> str:
    return (datetime.fromtimestamp(sim.clock.time(), UTC) + timedelta(days=days)).isoformat()


def subscription(sim: GraphSimulator, **changes: Any) -> dict[str, Any]:
    spec = {"changeType": "updated,deleted", "notificationUrl": HOOK, "resource": "users"}
    return {**spec, "expirationDateTime": in_days(sim, 2), "clientState": SECRET, **changes}


async def subscribed(sim: GraphSimulator, **changes: Any) -> tuple[dict[str, Any], Receiver]:
    receiver = Receiver("msgraph", SECRET, now=sim.clock.time)
    sim.outbound = receiver.transport()
    async with client(sim) as c:
        answer = await c.post("/v1.0/subscriptions", json=subscription(sim, **changes))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created, receiver


# -- subscriptions -----------------------------------------------------------------------------------


async def test_a_subscription_is_created_after_the_validation_handshake_of_each_url() -> None:
    sim = GraphSimulator(3)
    created, receiver = await subscribed(sim, lifecycleNotificationUrl=LIFECYCLE)
    assert created["resource"] == "users" and created["changeType"] == "updated,deleted" and created["id"]
    assert created["clientState"] == SECRET and created["lifecycleNotificationUrl"] == LIFECYCLE
    assert sorted(httpx.URL(h.url).path for h in receiver.handshakes) == [
        "/webhooks/msgraph",
        "/webhooks/msgraph/lifecycle",
    ]


async def test_a_url_that_fails_the_handshake_gets_no_subscription() -> None:
    sim = GraphSimulator(3)
    sim.outbound = httpx.MockTransport(lambda request: httpx.Response(404))
    async with client(sim) as c:
        refused = await c.post("/v1.0/subscriptions", json=subscription(sim))
        listed = (await c.get("/v1.0/subscriptions")).json()
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "ValidationError" and listed["value"] == []


@pytest.mark.parametrize(
    "changes",
    [
        {"changeType": "created"},
        {"resource": "groups"},
        {"clientState": "x" * 129},
        {"notificationUrl": ""},
        {"expirationDateTime": "2001-01-01T00:00:00Z"},
    ],
)
async def test_bad_subscriptions_are_400s(changes: dict[str, Any]) -> None:
    sim = GraphSimulator(1)
    sim.outbound = Receiver("msgraph").transport()
    async with client(sim) as c:
        answer = await c.post("/v1.0/subscriptions", json=subscription(sim, **changes))
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidRequest"


async def test_a_subscription_lives_at_most_41760_minutes_and_is_renewed_with_patch() -> None:
    sim = GraphSimulator(1)
    created, _ = await subscribed(sim)
    url = f"/v1.0/subscriptions/{created['id']}"
    async with client(sim) as c:
        too_long = await c.patch(url, json={"expirationDateTime": in_days(sim, 29.1)})
        renewed = await c.patch(url, json={"expirationDateTime": in_days(sim, 28)})
        shown = (await c.get(url)).json()
    assert too_long.status_code == 400 and "41760 minutes" in too_long.json()["error"]["message"]
    assert renewed.status_code == 200 and shown["expirationDateTime"] == renewed.json()["expirationDateTime"]


async def test_a_deleted_subscription_is_gone() -> None:
    sim = GraphSimulator(1)
    created, receiver = await subscribed(sim)
    async with client(sim) as c:
        removed = await c.delete(f"/v1.0/subscriptions/{created['id']}")
        missing = await c.get(f"/v1.0/subscriptions/{created['id']}")
    sim.create(1)
    assert removed.status_code == 204 and missing.status_code == 404 and await sim.deliver(receiver.client()) == []


async def test_changes_arrive_as_updated_except_permanent_deletes_and_verify_with_the_client_state() -> None:
    sim = GraphSimulator(5)
    _, receiver = await subscribed(sim)
    created = sim.create(1)
    soft = sim.delete(sim.ids()[:1])
    hard = sim.purge(soft)
    sim.update(sim.ids()[:1])
    await sim.deliver(receiver.client())
    types = [n["changeType"] for r in receiver.requests for n in orjson.loads(r.body)["value"]]
    assert types == ["updated", "updated", "deleted", "updated"]
    assert [(e.kind, e.external_id) for e in receiver.events()][:3] == [
        ("upsert", created[0]),
        ("upsert", soft[0]),
        ("deleted", hard[0]),
    ]


async def test_one_post_carries_the_notifications_of_every_subscription_of_a_url() -> None:
    sim = GraphSimulator(2)
    _, receiver = await subscribed(sim)
    await subscribed(sim)
    sim.update(sim.ids()[:1])
    sent = await sim.deliver(receiver.client())
    assert len(sent) == 1 and len(orjson.loads(receiver.requests[0].body)["value"]) == 2


async def test_a_failed_notification_is_retried_for_up_to_four_hours() -> None:
    sim = GraphSimulator(2)
    _, receiver = await subscribed(sim)
    receiver.statuses = [500] * 20
    sim.create(1)
    attempts = []
    for _ in range(10):
        attempts += [s.attempt for s in await sim.deliver(receiver.client())]
        sim.advance(3600)
    assert attempts == [0, 1, 2, 3, 4]  # 1, 2, 4, 8 minutes later, then the 4-hour horizon ends it


async def test_lifecycle_notifications_on_demand_and_when_a_subscription_expires() -> None:
    sim = GraphSimulator(1)
    created, receiver = await subscribed(sim, lifecycleNotificationUrl=LIFECYCLE)
    sim.lifecycle("missed")
    sim.advance(3 * DAY)
    await sim.deliver(receiver.client())
    events = [orjson.loads(r.body)["value"][0]["lifecycleEvent"] for r in receiver.requests]
    async with client(sim) as c:
        gone = await c.get(f"/v1.0/subscriptions/{created['id']}")
    assert events == ["missed", "subscriptionRemoved"] and gone.status_code == 404 and receiver.events() == []


# -- query options -----------------------------------------------------------------------------------


async def test_filter_takes_eq_in_starts_with_and_or() -> None:
    sim = GraphSimulator(30)
    first = sim.people.all[3]
    q = f"startsWith(displayName,'{first.first}') and (mail eq '{first.email.upper()}' or accountEnabled eq false)"
    _, body = await get(sim, f"/v1.0/users?$filter={q}")
    _, listed = await get(sim, f"/v1.0/users?$filter=id in ('{sim.ids()[0]}','{sim.ids()[1]}')")
    assert [u["id"] for u in body["value"]] == [sim.ids()[3]] and len(listed["value"]) == 2


async def test_advanced_filters_need_eventual_consistency_and_count() -> None:
    sim = GraphSimulator(10)
    refused, _ = await get(sim, "/v1.0/users?$filter=endsWith(mail,'example.org')")
    ok, body = await get(sim, "/v1.0/users?$filter=jobTitle ne 'CEO'&$count=true", **EVENTUAL)
    unsupported, error = await get(sim, "/v1.0/users?$filter=mobilePhone eq '1'")
    assert refused == 400 and ok == 200 and body["@odata.count"] == 10
    assert unsupported == 400 and "mobilePhone" in error["error"]["message"]


async def test_search_needs_eventual_consistency_and_matches_word_starts() -> None:
    sim = GraphSimulator(30)
    name = sim.people.all[5].last
    refused, _ = await get(sim, f'/v1.0/users?$search="displayName:{name}"')
    ok, body = await get(sim, f'/v1.0/users?$search="displayName:{name[:3].lower()}"', **EVENTUAL)
    bad, _ = await get(sim, "/v1.0/users?$search=displayName:ada", **EVENTUAL)
    assert refused == 400 and ok == 200 and bad == 400
    assert body["value"] and all(u["displayName"].split()[1].startswith(name[:3]) for u in body["value"])


async def test_orderby_pages_in_order_and_needs_eventual_consistency_for_most_properties() -> None:
    sim = GraphSimulator(25)
    names: list[str] = []
    url = "/v1.0/users?$orderby=displayName desc&$top=10&$select=displayName"
    async with client(sim) as c:
        while url:
            body = (await c.get(url)).json()
            names += [u["displayName"] for u in body["value"]]
            url = body.get("@odata.nextLink", "")
        refused = await c.get("/v1.0/users?$orderby=jobTitle")
    assert len(names) == 25 and names == sorted(names, key=str.lower, reverse=True) and refused.status_code == 400


async def test_expand_manager_costs_one_more_resource_unit() -> None:
    sim = GraphSimulator(12)
    async with client(sim) as c:
        expanded = await c.get("/v1.0/users?$expand=manager")
        unknown = await c.get("/v1.0/users?$expand=memberOf")
    users = expanded.json()["value"]
    assert expanded.headers["x-ms-resource-unit"] == "3" and "manager" not in users[0]
    assert users[1]["manager"]["id"] == sim.ids()[0] and unknown.status_code == 400


# -- delta ---------------------------------------------------------------------------------------------


async def test_delta_tracks_only_the_selected_properties() -> None:
    sim = GraphSimulator(5)
    _, first = await get(sim, "/v1.0/users/delta?$select=displayName")
    sim.update(sim.ids()[:1])  # a new job title: not selected
    sim.update(sim.ids()[1:2], {"first": "Augusta"})
    _, later = await get(sim, first["@odata.deltaLink"])
    assert [(u["id"], u["displayName"]) for u in later["value"]] == [(sim.ids()[1], sim.people.all[1].full_name)]


async def test_a_restored_user_comes_back_whole_in_delta() -> None:
    sim = GraphSimulator(4)
    _, first = await get(sim, "/v1.0/users/delta?$select=displayName,mail")
    gone = sim.delete(sim.ids()[:1])
    sim.restore(gone)
    _, later = await get(sim, first["@odata.deltaLink"], Prefer="return=minimal")
    assert later["value"] == [
        {"id": gone[0], "displayName": sim.people.all[0].full_name, "mail": sim.people.all[0].email}
    ]


@pytest.mark.parametrize(("days", "status"), [(6, 200), (8, 400)])
async def test_a_delta_token_lives_seven_days(days: int, status: int) -> None:
    sim = GraphSimulator(3)
    _, first = await get(sim, "/v1.0/users/delta")
    sim.advance(days * DAY)
    answer, body = await get(sim, first["@odata.deltaLink"])
    assert answer == status and (status == 200 or body["error"]["code"] == "syncStateNotFound")


async def test_delta_refuses_options_it_does_not_take() -> None:
    status, body = await get(GraphSimulator(2), "/v1.0/users/delta?$filter=id eq 'x'")
    assert status == 400 and body["error"]["code"] == "Request_UnsupportedQuery"


async def test_soft_deleted_users_are_kept_30_days_then_deleted_for_good() -> None:
    sim = GraphSimulator(4)
    gone = sim.delete(sim.ids()[:1])
    sim.advance(29 * DAY)
    _, first = await get(sim, "/v1.0/users/delta")
    sim.advance(2 * DAY)
    _, deleted_items = await get(sim, "/v1.0/directory/deletedItems/microsoft.graph.user")
    _, later = await get(sim, first["@odata.deltaLink"])
    assert deleted_items["value"] == [] and later["value"] == [{"id": gone[0], "@removed": {"reason": "deleted"}}]


# -- limits and permissions ----------------------------------------------------------------------------


async def test_the_apps_global_request_limit_answers_429() -> None:
    sim = GraphSimulator(3, app_requests_per_10s=2)
    async with client(sim) as c:
        statuses = [
            (await c.get("/v1.0/users", headers={"x-ms-throttle-priority": "low"})).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 429]


async def test_past_80_percent_of_the_bucket_answers_say_how_full_it_is() -> None:
    sim = GraphSimulator(3, resource_units=10)
    async with client(sim) as c:
        answers = [await c.get("/v1.0/users") for _ in range(5)]
    assert [a.headers.get("x-ms-throttle-limit-percentage") for a in answers] == [None, None, None, None, "1.0"]


async def test_a_token_without_a_user_read_permission_is_403() -> None:
    sim = GraphSimulator(2)
    async with asgi_client(sim) as http:
        narrow = await token_with_scope(http, sim, "openid offline_access")
        granted = await token_with_scope(http, sim, "openid https://graph.microsoft.com/User.Read.All")
        refused = await http.get("/v1.0/users", headers={"Authorization": f"Bearer {narrow}"})
        allowed = await http.get("/v1.0/users", headers={"Authorization": f"Bearer {granted}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "Authorization_RequestDenied"
    assert allowed.status_code == 200
