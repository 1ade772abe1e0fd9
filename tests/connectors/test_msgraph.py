"""The shipped Microsoft Graph connector (YAML plus hooks) against the in-memory Graph simulator."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from connectors import registry
from connectors.base import Connector
from connectors.errors import AuthError, MalformedPage, WebhookRejected
from connectors.incremental import pull_changes
from connectors.msgraph.hooks import parse_webhook, verify_webhook, webhook_handshake
from connectors.msgraph.simulator import DEFAULT_TOKEN, GraphSimulator
from connectors.msgraph.simulator import odata as graph_simulator
from connectors.spec import RateLimit, RetryPolicy
from connectors.webhooks import WebhookEvent, WebhookRequest
from mappings.engine import compile_mapping
from mappings.udm.users import User

BASE = "https://graph.microsoft.com"
SECRET = "s3cr3t-client-state"
SPEC_USER = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
SPEC_NOTIFICATION = orjson.dumps(  # api-specs/msgraph.md, "Notification delivery"
    {
        "value": [
            {
                "subscriptionId": "e3b1c5d7-9f2a-4c6e-8b0d-1a3c5e7f9b2d",
                "subscriptionExpirationDateTime": "2024-05-28T12:00:00+00:00",
                "changeType": "updated",
                "resource": f"Users/{SPEC_USER}",
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.User",
                    "@odata.id": f"Users/{SPEC_USER}",
                    "id": SPEC_USER,
                    "organizationId": "2f9e8d7c-6b5a-4c3d-9e1f-0a2b4c6d8e0f",
                },
                "clientState": SECRET,
                "tenantId": "2f9e8d7c-6b5a-4c3d-9e1f-0a2b4c6d8e0f",
            }
        ]
    }
)
FAST_RETRY = RetryPolicy(attempts=3, backoff_seconds=0, max_backoff_seconds=0)


def open_graph(sim: GraphSimulator, token: str = DEFAULT_TOKEN) -> Connector:
    return registry.open_connector(
        "msgraph",
        parameters={"base_url": BASE},
        credentials={"token": SecretStr(token)},
        transport=httpx.ASGITransport(app=sim.app),
        retry=FAST_RETRY,
    )


def raw_client(sim: GraphSimulator, token: str = DEFAULT_TOKEN) -> httpx.AsyncClient:
    auth = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=auth)


async def get_json(sim: GraphSimulator, url: str, **headers: str) -> tuple[int, Any]:
    async with raw_client(sim) as client:
        response = await client.get(url, headers=headers)
    return response.status_code, response.json()


def hook_request(body: bytes, url: str = "https://inlet.example/hooks/msgraph") -> WebhookRequest:
    return WebhookRequest("POST", url, httpx.Headers({"Content-Type": "application/json"}), body)


# -- listing ---------------------------------------------------------------------------------------


async def test_lists_every_user_in_pages_of_999() -> None:
    sim = GraphSimulator(2000)
    async with open_graph(sim) as graph:
        pages = [page async for page in graph.pages("users")]
    assert [len(page.records) for page in pages] == [999, 999, 2]
    assert [graph.record_id("users", r) for page in pages for r in page.records] == sim.ids()
    assert sim.stats()["list_requests"] == 3


async def test_next_link_is_absolute_and_carries_the_query_and_a_skiptoken() -> None:
    status, body = await get_json(GraphSimulator(5), "/v1.0/users?$top=2&$select=id,mail")
    link = body["@odata.nextLink"]
    assert status == 200 and link.startswith(f"{BASE}/v1.0/users?$top=2&$select=id,mail&$skiptoken=")
    status, last = await get_json(GraphSimulator(5), link.replace("$top=2", "$top=999"))
    assert status == 200 and len(last["value"]) == 3 and "@odata.nextLink" not in last


async def test_without_options_a_page_holds_100_users_with_the_default_properties() -> None:
    status, body = await get_json(GraphSimulator(150), "/v1.0/users")
    assert status == 200 and len(body["value"]) == 100 and body["@odata.context"].endswith("#users")
    assert set(body["value"][0]) == set(graph_simulator._DEFAULT_SELECT)


@pytest.mark.parametrize(
    ("query", "code", "text"),
    [
        ("$top=1000", "Request_UnsupportedQuery", "Must be between 1 and 999 inclusive"),
        ("$top=0", "Request_UnsupportedQuery", "Invalid page size specified: '0'"),
        ("$skip=10", "Request_BadRequest", "'$skip' is not supported"),
        ("$select=id,shoeSize", "Request_BadRequest", "Could not find a property named 'shoeSize'"),
        ("$count=true", "Request_UnsupportedQuery", "ConsistencyLevel: eventual"),
        ("$skiptoken=garbage", "Directory_ExpiredPageToken", "page token value has expired"),
    ],
)
async def test_bad_query_options_are_400s_in_the_error_envelope(query: str, code: str, text: str) -> None:
    status, body = await get_json(GraphSimulator(3), f"/v1.0/users?{query}")
    assert status == 400 and body["error"]["code"] == code and text in body["error"]["message"]
    assert {"date", "request-id", "client-request-id"} <= set(body["error"]["innerError"])


async def test_count_needs_the_eventual_consistency_level() -> None:
    status, body = await get_json(GraphSimulator(7), "/v1.0/users?$count=true&$top=2", ConsistencyLevel="eventual")
    assert status == 200 and body["@odata.count"] == 7 and len(body["value"]) == 2


async def test_soft_deleted_users_leave_the_list_and_appear_in_deleted_items() -> None:
    sim = GraphSimulator(10)
    gone = sim.delete(3)
    purged = sim.purge([gone[0]])
    async with open_graph(sim) as graph:
        listed = [graph.record_id("users", r) async for page in graph.pages("users") for r in page.records]
    status, body = await get_json(sim, "/v1.0/directory/deletedItems/microsoft.graph.user?$select=id,deletedDateTime")
    assert len(listed) == 7 and not set(listed) & set(gone)
    assert status == 200 and [u["id"] for u in body["value"]] == sorted(set(gone) - set(purged), key=gone.index)
    assert all(u["deletedDateTime"].endswith("Z") for u in body["value"])


async def test_a_repeated_token_page_hands_out_its_own_link_again() -> None:
    sim = GraphSimulator(10)
    _, first = await get_json(sim, "/v1.0/users?$top=3")
    sim.inject(repeat_token=1)
    _, second = await get_json(sim, first["@odata.nextLink"])
    assert second["@odata.nextLink"] == first["@odata.nextLink"]


# -- get -------------------------------------------------------------------------------------------


async def test_get_by_id_or_user_principal_name() -> None:
    sim = GraphSimulator(5)
    wanted = sim.ids()[3]
    async with open_graph(sim) as graph:
        record = await graph.get("users", wanted)
    assert record is not None and record["id"] == wanted and record["@odata.context"].endswith("/$entity")
    status, by_upn = await get_json(sim, f"/v1.0/users/{record['userPrincipalName']}")
    assert status == 200 and by_upn["id"] == wanted


async def test_a_soft_deleted_user_is_a_404_resource_not_found_and_get_says_none() -> None:
    sim = GraphSimulator(5)
    gone = sim.delete(1)[0]
    status, body = await get_json(sim, f"/v1.0/users/{gone}")
    assert status == 404 and body["error"]["code"] == "Request_ResourceNotFound"
    assert body["error"]["message"].startswith(f"Resource '{gone}' does not exist")
    async with open_graph(sim) as graph:
        assert await graph.get("users", gone) is None


async def test_udm_fields_map_a_fetched_user() -> None:
    sim = GraphSimulator(3)
    async with open_graph(sim) as graph:
        raw = await graph.get("users", sim.ids()[1])
    udm_fields = registry.load("msgraph")[0].collections["users"].udm_fields
    user = User.model_validate(compile_mapping(udm_fields, origin="msgraph").render({"raw": raw}))
    person = sim.find(sim.ids()[1])
    assert person is not None and (user.email, user.full_name, user.phone) == (
        person.email,
        person.full_name,
        person.phone,
    )
    assert (user.company, user.title, user.active) == (person.company, person.title, True) and user.created_at


# -- auth, throttling, faults ----------------------------------------------------------------------


async def test_a_wrong_token_is_a_401_invalid_authentication_token() -> None:
    sim = GraphSimulator(3)
    async with raw_client(sim, token="eyJ.wrong.token") as client:
        response = await client.get("/v1.0/users")
    assert response.status_code == 401 and response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "authorization_uri" in response.headers["WWW-Authenticate"]
    async with open_graph(sim, token="eyJ.wrong.token") as graph:
        with pytest.raises(AuthError):
            await graph.get("users", sim.ids()[0])


async def test_an_injected_429_has_graphs_body_and_headers() -> None:
    sim = GraphSimulator(3)
    sim.inject(status_429=1, retry_after=7)
    async with raw_client(sim) as client:
        response = await client.get("/v1.0/users")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert response.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"


async def test_429_retry_after_is_waited_out(waits: list[float]) -> None:
    sim = GraphSimulator(3)
    sim.inject(status_429=1, retry_after=0.5)
    async with open_graph(sim) as graph:
        assert await graph.get("users", sim.ids()[0]) is not None
    assert waits == [0.5]


@pytest.mark.parametrize(("query", "units"), [("", "2"), ("?$select=id", "1"), ("?$select=id&$top=5", "1")])
async def test_each_response_says_its_resource_unit_cost(query: str, units: str) -> None:
    async with raw_client(GraphSimulator(3)) as client:
        response = await client.get(f"/v1.0/users{query}")
    assert response.headers["x-ms-resource-unit"] == units


async def test_an_empty_resource_unit_bucket_answers_429_with_retry_after() -> None:
    sim = GraphSimulator(3, resource_units=4)
    async with raw_client(sim) as client:
        statuses = [(await client.get("/v1.0/users")).status_code for _ in range(3)]
        throttled = await client.get("/v1.0/users")
    assert statuses == [200, 200, 429] and int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["x-ms-throttle-scope"].startswith("Tenant_Application/")


async def test_a_truncated_page_is_a_malformed_page() -> None:
    sim = GraphSimulator(3)
    sim.inject(malformed=1)
    async with open_graph(sim) as graph:
        with pytest.raises(MalformedPage):
            await graph.get("users", sim.ids()[0])


def test_the_request_budget_stays_under_the_smallest_tenant_quota() -> None:
    spec = registry.load("msgraph")[0]
    assert spec.rate_limit == RateLimit(requests=1500, per_seconds=10)
    assert spec.rate_limit.requests * 2 < 3_500  # no read costs more than 2 resource units


# -- delta -----------------------------------------------------------------------------------------


async def test_a_delta_round_pages_with_next_links_and_ends_with_a_delta_link() -> None:
    sim = GraphSimulator(25, delta_page_size=10)
    pages, url = [], "/v1.0/users/delta?$select=displayName"
    while url:
        _, body = await get_json(sim, url)
        pages.append(body)
        url = body.get("@odata.nextLink")
    assert [len(p["value"]) for p in pages] == [10, 10, 5] and set(pages[0]["value"][0]) == {"id", "displayName"}
    assert ["@odata.deltaLink" in p for p in pages] == [False, False, True]
    assert pages[-1]["@odata.deltaLink"].startswith(f"{BASE}/v1.0/users/delta?$deltatoken=")


async def test_empty_delta_pages_still_carry_a_next_link_and_are_followed() -> None:
    sim = GraphSimulator(15, delta_page_size=5)
    sim.delete(sim.ids()[:10])
    _, first = await get_json(sim, "/v1.0/users/delta")
    _, second = await get_json(sim, first["@odata.nextLink"])
    assert len(first["value"]) == 5 and second["value"] == [] and "@odata.nextLink" in second
    async with open_graph(sim) as graph:
        result = await pull_changes(graph, "users")
    assert sorted(c.external_id for c in result.changes) == sorted(sim.ids())


async def test_soft_and_permanent_deletes_arrive_as_removed_changed_and_deleted() -> None:
    sim = GraphSimulator(10)
    _, first = await get_json(sim, "/v1.0/users/delta")
    soft, hard = sim.delete(sim.ids()[:1]), sim.purge(sim.ids()[1:2])
    _, later = await get_json(sim, first["@odata.deltaLink"])
    removed = {u["id"]: u["@removed"]["reason"] for u in later["value"]}
    assert removed == {soft[0]: "changed", hard[0]: "deleted"}


async def test_deletions_of_both_kinds_are_deleted_changes() -> None:
    sim = GraphSimulator(10)
    async with open_graph(sim) as graph:
        first = await pull_changes(graph, "users")
        gone = sim.delete(sim.ids()[:2]) + sim.purge(sim.ids()[2:3])
        later = await pull_changes(graph, "users", first.since)
    assert sorted(c.external_id for c in later.changes if c.kind == "deleted") == sorted(gone)
    assert all(c.record is None for c in later.changes) and later.since and later.since != first.since


async def test_an_expired_delta_token_is_400_sync_state_not_found_but_newer_tokens_work() -> None:
    sim = GraphSimulator(5)
    _, old = await get_json(sim, "/v1.0/users/delta")
    sim.inject(expire_tokens=True)
    status, body = await get_json(sim, old["@odata.deltaLink"])
    assert status == 400 and body["error"]["code"] == "syncStateNotFound"
    _, new = await get_json(sim, "/v1.0/users/delta?$deltatoken=latest")
    assert new["value"] == [] and (await get_json(sim, new["@odata.deltaLink"]))[0] == 200


async def test_delta_tokens_expire_after_seven_days(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = GraphSimulator(5)
    _, body = await get_json(sim, "/v1.0/users/delta")
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 7 * 86_400 + 60)  # the simulator reads time.time()
    status, expired = await get_json(sim, body["@odata.deltaLink"])
    assert status == 400 and expired["error"]["code"] == "syncStateNotFound"


async def test_an_expired_delta_link_makes_the_connector_resync() -> None:
    sim = GraphSimulator(8)
    async with open_graph(sim) as graph:
        since = (await pull_changes(graph, "users")).since
        sim.inject(expire_tokens=True)
        result = await pull_changes(graph, "users", since)
    assert result.resynced and sorted(c.external_id for c in result.changes) == sorted(sim.ids())


async def test_prefer_return_minimal_sends_only_changed_properties_of_updated_users() -> None:
    sim = GraphSimulator(5)
    _, first = await get_json(sim, "/v1.0/users/delta?$select=displayName,jobTitle")
    updated, created = sim.update(1), sim.create(1)
    _, later = await get_json(sim, first["@odata.deltaLink"], Prefer="return=minimal")
    by_id = {u["id"]: u for u in later["value"]}
    assert set(by_id[updated[0]]) == {"id", "jobTitle"} and set(by_id[created[0]]) == {"id", "displayName", "jobTitle"}


async def test_a_410_from_the_delta_query_means_the_token_is_gone_and_a_resync_follows() -> None:
    body = {"error": {"code": "resyncRequired", "message": "Resync required."}}

    def graph(request: httpx.Request) -> httpx.Response:
        if "$deltatoken" in str(request.url):
            return httpx.Response(410, json=body)
        return httpx.Response(
            200, json={"value": [{"id": SPEC_USER}], "@odata.deltaLink": f"{BASE}/v1.0/users/delta?$deltatoken=y"}
        )

    connector = registry.open_connector(
        "msgraph", credentials={"token": SecretStr("t")}, transport=httpx.MockTransport(graph)
    )
    async with connector:
        result = await pull_changes(connector, "users", f"{BASE}/v1.0/users/delta?$deltatoken=x")
    assert result.resynced and [c.external_id for c in result.changes] == [SPEC_USER]


# -- change notifications --------------------------------------------------------------------------


def test_the_validation_handshake_echoes_the_decoded_token_as_text_plain() -> None:
    url = "https://inlet.example/hooks/msgraph?validationToken=Validation%3A%20Testing%20client+reachability"
    reply = webhook_handshake(WebhookRequest("POST", url, httpx.Headers({"Content-Type": "text/plain"}), b""))
    assert reply is not None and reply.status == 200
    assert reply.body == b"Validation: Testing client reachability"
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_an_ordinary_notification_is_no_handshake() -> None:
    assert webhook_handshake(hook_request(SPEC_NOTIFICATION)) is None


def test_the_specs_notification_verifies_and_announces_one_upsert() -> None:
    request = hook_request(SPEC_NOTIFICATION)
    verify_webhook(request, SECRET, time.time())
    assert parse_webhook(request) == [WebhookEvent("upsert", SPEC_USER, None, None)]


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        (SPEC_NOTIFICATION.replace(SECRET.encode(), b"s3cr3t-client-statX"), SECRET),  # tampered
        (SPEC_NOTIFICATION, "another-secret"),  # wrong secret
        (SPEC_NOTIFICATION.replace(b'"clientState"', b'"clientStatus"'), SECRET),  # missing clientState
        (b'{"value": []}', SECRET),  # nothing to verify
        (b"not json", SECRET),
    ],
)
def test_forged_or_unverifiable_notifications_are_rejected(body: bytes, secret: str) -> None:
    with pytest.raises(WebhookRejected):
        verify_webhook(hook_request(body), secret, time.time())


def test_notifications_carry_no_timestamp_so_an_old_one_still_verifies() -> None:
    verify_webhook(hook_request(SPEC_NOTIFICATION), SECRET, time.time() + 30 * 86_400)


def test_one_forged_notification_rejects_the_whole_batch() -> None:
    batch = orjson.loads(GraphSimulator(3).notification(["a", "b"], "updated", SECRET))
    batch["value"][1]["clientState"] = "guess"
    with pytest.raises(WebhookRejected):
        verify_webhook(hook_request(orjson.dumps(batch)), SECRET, time.time())


def test_deleted_created_and_foreign_notifications_are_parsed_by_kind() -> None:
    sim = GraphSimulator(3)
    batch = orjson.loads(sim.notification(sim.ids()[:2], "deleted", SECRET))
    batch["value"][1]["changeType"] = "created"
    batch["value"].append({**batch["value"][0], "resource": "Groups/1", "resourceData": {"id": "1"}})
    batch["value"].append({"lifecycleEvent": "missed", "clientState": SECRET, "subscriptionId": "s"})
    events = parse_webhook(hook_request(orjson.dumps(batch)))
    assert [(e.kind, e.external_id) for e in events] == [("deleted", sim.ids()[0]), ("upsert", sim.ids()[1])]
