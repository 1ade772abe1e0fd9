"""The Zendesk simulator against the facts of api-specs/zendesk.md beyond listing and the exports
(connectors/zendesk/CONFORMANCE.md): list filters, the sample export, sideloads, the deleted-user lifecycle,
suspension, scopes, and webhooks (the Webhooks API, signed user events, test requests)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from connectors.zendesk.simulator import ADMIN_EMAIL, DEFAULT_TOKEN, PERMISSION_SET, TEST_SECRET, ZendeskSimulator, sign
from tests.support.oauth import asgi_client, token_with_scope
from tests.support.receiver import Receiver

BASE = "https://acme.zendesk.com"
HOOKS = "/api/v2/webhooks"
ENDPOINT = "https://inlet.example/webhooks/zendesk"


def client(sim: ZendeskSimulator) -> httpx.AsyncClient:
    auth = httpx.BasicAuth(f"{ADMIN_EMAIL}/token", DEFAULT_TOKEN)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, auth=auth)


async def users(c: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = (await c.get("/api/v2/users.json", params=params)).json()["users"]
    return body


def webhook(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "inlet", "endpoint": ENDPOINT, "http_method": "POST", "request_format": "json"}
    spec |= {"status": "active", "subscriptions": ["zen:event-type:user.created", "zen:event-type:user.deleted"]}
    return {"webhook": {**spec, **changes}}


async def subscribed(sim: ZendeskSimulator, **changes: Any) -> tuple[str, Receiver]:
    """A saved webhook and a receiver holding its signing secret."""
    async with client(sim) as c:
        hook = (await c.post(HOOKS, json=webhook(**changes))).json()["webhook"]
        secret = (await c.get(f"{HOOKS}/{hook['id']}/signing_secret")).json()["signing_secret"]["secret"]
    return hook["id"], Receiver("zendesk", secret, now=sim.clock.time)


# -- list filters, the sample export, sideloads ----------------------------------------------------


async def test_the_role_filter_takes_one_role_or_several() -> None:
    async with client(ZendeskSimulator(60)) as c:
        agents = await users(c, role="agent")
        staff = await users(c, **{"role[]": ["agent", "admin"]})
        unknown = await c.get("/api/v2/users.json", params={"role": "owner"})
    assert agents and {u["role"] for u in agents} == {"agent"}
    assert {u["role"] for u in staff} == {"agent", "admin"} and len(staff) > len(agents)
    assert unknown.status_code == 400 and unknown.json()["error"] == "InvalidValue"


async def test_permission_set_and_external_id_filters() -> None:
    sim = ZendeskSimulator(60)
    async with client(sim) as c:
        custom = await users(c, permission_set=str(PERMISSION_SET))
        one = await users(c, external_id="crm-9")
    assert (
        custom
        and {u["custom_role_id"] for u in custom} == {PERMISSION_SET}
        and {u["role"] for u in custom} == {"agent"}
    )
    assert [u["external_id"] for u in one] == ["crm-9"]


async def test_the_sample_export_has_the_time_based_format_and_at_most_50_users() -> None:
    async with client(ZendeskSimulator(120)) as c:
        body = (await c.get("/api/v2/incremental/users/sample.json", params={"start_time": 0})).json()
    assert len(body["users"]) == body["count"] == 50 and body["end_of_stream"] is False
    assert {"next_page", "end_time"} <= set(body)


async def test_the_sample_export_allows_10_requests_per_20_minutes() -> None:
    sim = ZendeskSimulator(3)
    async with client(sim) as c:
        statuses = [
            (await c.get("/api/v2/incremental/users/sample", params={"start_time": 0})).status_code for _ in range(11)
        ]
        sim.advance(20 * 60)
        later = await c.get("/api/v2/incremental/users/sample", params={"start_time": 0})
    assert statuses == [200] * 10 + [429] and later.status_code == 200


async def test_exports_sideload_organizations_and_identities() -> None:
    sim = ZendeskSimulator(5)
    async with client(sim) as c:
        body = (
            await c.get(
                "/api/v2/incremental/users/cursor", params={"start_time": 0, "include": "organizations,identities"}
            )
        ).json()
    orgs = {o["id"] for o in body["organizations"]}
    assert {u["organization_id"] for u in body["users"]} == orgs
    assert {i["value"] for i in body["identities"] if i["type"] == "email"} == {u["email"] for u in body["users"]}


# -- deleted users, suspension, scopes ---------------------------------------------------------------


async def test_a_soft_deleted_user_can_be_restored() -> None:
    sim = ZendeskSimulator(3)
    gone = sim.soft_delete(sim.ids()[:1])
    sim.restore(gone)
    async with client(sim) as c:
        user = (await c.get(f"/api/v2/users/{gone[0]}.json")).json()["user"]
        deleted = (await c.get("/api/v2/deleted_users.json")).json()["deleted_users"]
    assert user["active"] is True and deleted == []


async def test_a_permanently_deleted_users_rename_can_lag() -> None:
    sim = ZendeskSimulator(3, scrub_delay_seconds=600)
    [gone] = sim.delete(sim.ids()[:1])
    async with client(sim) as c:
        before = (await c.get("/api/v2/deleted_users.json")).json()["deleted_users"][0]
        sim.advance(601)
        after = (await c.get("/api/v2/deleted_users.json")).json()["deleted_users"][0]
        shown = await c.get(f"/api/v2/users/{gone}.json")
    assert before["name"] != "Permanently Deleted User" and after["name"] == "Permanently Deleted User"
    assert after["email"] is None and shown.status_code == 404


async def test_a_suspended_user_is_still_active_and_not_deleted() -> None:
    sim = ZendeskSimulator(3)
    [user_id] = sim.suspend(sim.ids()[:1])
    async with client(sim) as c:
        user = (await c.get(f"/api/v2/users/{user_id}.json")).json()["user"]
        deleted = (await c.get("/api/v2/deleted_users.json")).json()["deleted_users"]
    assert (user["suspended"], user["active"], deleted) == (True, True, [])


async def test_an_oauth_token_without_a_users_read_scope_is_forbidden() -> None:
    sim = ZendeskSimulator(2)
    async with asgi_client(sim) as http:
        narrow, granted = (
            await token_with_scope(http, sim, "tickets:read"),
            await token_with_scope(http, sim, "users:read"),
        )
        refused = await http.get("/api/v2/users.json", headers={"Authorization": f"Bearer {narrow}"})
        allowed = await http.get("/api/v2/users.json", headers={"Authorization": f"Bearer {granted}"})
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden" and allowed.status_code == 200


# -- webhooks ---------------------------------------------------------------------------------------


async def test_the_webhooks_api_creates_lists_shows_updates_and_deletes() -> None:
    sim = ZendeskSimulator(1)
    async with client(sim) as c:
        created = await c.post(HOOKS, json=webhook())
        hook_id = created.json()["webhook"]["id"]
        listed = (await c.get(HOOKS)).json()
        patched = await c.patch(f"{HOOKS}/{hook_id}", json={"webhook": {"status": "inactive"}})
        shown = (await c.get(f"{HOOKS}/{hook_id}")).json()["webhook"]
        removed = await c.delete(f"{HOOKS}/{hook_id}")
        missing = await c.get(f"{HOOKS}/{hook_id}")
    assert created.status_code == 201 and "signing_secret" not in created.json()["webhook"]
    assert [h["id"] for h in listed["webhooks"]] == [hook_id] and listed["meta"]["has_more"] is False
    assert patched.status_code == 204 and shown["status"] == "inactive" and shown["name"] == "inlet"
    assert removed.status_code == 204 and missing.status_code == 404


@pytest.mark.parametrize(
    "changes",
    [{"http_method": "GET"}, {"subscriptions": ["user.created"]}, {"endpoint": ""}, {"request_format": "yaml"}],
)
async def test_a_bad_webhook_is_refused(changes: dict[str, Any]) -> None:
    async with client(ZendeskSimulator(1)) as c:
        answer = await c.post(HOOKS, json=webhook(**changes))
    assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == "InvalidInput"


async def test_the_signing_secret_is_shown_and_reset() -> None:
    sim = ZendeskSimulator(1)
    async with client(sim) as c:
        hook_id = (await c.post(HOOKS, json=webhook())).json()["webhook"]["id"]
        shown = (await c.get(f"{HOOKS}/{hook_id}/signing_secret")).json()["signing_secret"]
        reset = await c.post(f"{HOOKS}/{hook_id}/signing_secret")
    assert shown["algorithm"] == "SHA256" and reset.status_code == 201
    assert reset.json()["signing_secret"]["secret"] != shown["secret"]


async def test_user_events_are_delivered_signed_one_per_request() -> None:
    sim = ZendeskSimulator(3)
    _, receiver = await subscribed(sim)
    created = sim.create(1)
    deleted = sim.soft_delete(sim.ids()[:1])
    sent = await sim.deliver(receiver.client())
    assert [s.status for s in sent] == [200, 200]
    assert [(e.kind, e.external_id) for e in receiver.events()] == [("upsert", created[0]), ("deleted", deleted[0])]
    first = orjson.loads(receiver.requests[0].body)
    assert first["type"] == "zen:event-type:user.created" and first["detail"]["id"] == created[0]
    assert first["subject"] == f"zen:user:{created[0]}" and first["zendesk_event_version"] == "2022-06-20"


async def test_change_events_carry_current_and_previous() -> None:
    sim = ZendeskSimulator(3)
    _, receiver = await subscribed(
        sim, subscriptions=["zen:event-type:user.name_changed", "zen:event-type:user.active_changed"]
    )
    user = sim.ids()[0]
    old = sim.people.all[0].full_name
    sim.update([user], {"first": "Augusta"})
    sim.soft_delete([user])
    await sim.deliver(receiver.client())
    named, inactive = (orjson.loads(r.body) for r in receiver.requests)
    assert named["event"] == {"current": f"Augusta {old.split()[1]}", "previous": old}
    assert inactive["event"] == {"current": False, "previous": True} and receiver.events()[1].kind == "deleted"


async def test_an_inactive_webhook_sends_nothing() -> None:
    sim = ZendeskSimulator(1)
    _, receiver = await subscribed(sim, status="inactive")
    sim.create(2)
    assert await sim.deliver(receiver.client()) == []


async def test_a_test_request_to_an_unsaved_webhook_is_signed_with_the_static_test_secret() -> None:
    sim = ZendeskSimulator(1)
    receiver = Receiver("zendesk", TEST_SECRET, now=sim.clock.time)
    sim.outbound = receiver.transport()
    async with client(sim) as c:
        tried = (await c.post(f"{HOOKS}/test", json={"request": {"endpoint": ENDPOINT, "http_method": "POST"}})).json()
    assert tried["response"]["status"] == 200 and len(receiver.requests) == 1
    receiver.parse(receiver.requests[0])  # verifies with the documented test secret


async def test_a_get_test_request_has_an_empty_signed_body() -> None:
    sim = ZendeskSimulator(1)
    receiver = Receiver("zendesk", TEST_SECRET, now=sim.clock.time)
    sim.outbound = receiver.transport()
    async with client(sim) as c:
        await c.post(f"{HOOKS}/test", json={"request": {"endpoint": ENDPOINT, "http_method": "GET"}})
    [sent] = receiver.requests
    assert sent.method == "GET" and sent.body == b""
    stamp = sent.headers["X-Zendesk-Webhook-Signature-Timestamp"]
    assert sent.headers["X-Zendesk-Webhook-Signature"] == sign(TEST_SECRET, stamp, b"")


def test_the_simulator_signs_the_specs_test_vector() -> None:
    body = b'{"type":"zen:event-type:user.created","id":"e1"}'
    assert sign(TEST_SECRET, "2024-05-01T12:00:00Z", body) == "Hm9Zme/0rlCV6qbVvCrOUXOPcHMTNHgrp/17LlOOFoQ="
