"""The shipped HubSpot connector (YAML plus hooks) against the in-memory HubSpot simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from connectors import registry
from connectors.base import Connector, Page
from connectors.budget import RequestBudget
from connectors.errors import AuthError, MalformedPage, RetryableError, WebhookRejected
from connectors.hubspot.hooks import parse_webhook, retry_after, verify_webhook
from connectors.hubspot.simulator import HubSpotSimulator
from connectors.incremental import pull_changes
from connectors.spec import RateLimit
from connectors.webhooks import WebhookEvent, WebhookRequest

TOKEN = "pat-na1-11111111-test-token-5e7d"
BASE = "https://api.hubapi.com"


def open_hubspot(sim: HubSpotSimulator, token: str = TOKEN, budget: RequestBudget | None = None) -> Connector:
    return registry.open_connector(
        "hubspot",
        parameters={"base_url": BASE},
        credentials={"token": SecretStr(token)},
        transport=httpx.ASGITransport(app=sim.app),
        budget=budget,
    )


def simulator(records: int = 250, **options: Any) -> HubSpotSimulator:
    return HubSpotSimulator(records=records, seed=7, token=TOKEN, rate_interval_ms=50, **options)


async def read_all(connector: Connector) -> list[Page]:
    return [page async for page in connector.pages("contacts")]


async def test_lists_every_contact_in_pages_of_100() -> None:
    sim = simulator(250)
    async with open_hubspot(sim) as hubspot:
        pages = await read_all(hubspot)
    assert [len(page.records) for page in pages] == [100, 100, 50]
    assert [record["id"] for page in pages for record in page.records] == sim.ids()
    assert pages[-1].next is None and sim.stats()["list_requests"] == 3


async def test_a_listing_of_exactly_one_page_stops_after_it() -> None:
    sim = simulator(100)
    async with open_hubspot(sim) as hubspot:
        pages = await read_all(hubspot)
    assert [len(page.records) for page in pages] == [100] and sim.stats()["list_requests"] == 1


async def test_listed_records_carry_the_declared_properties() -> None:
    async with open_hubspot(simulator(3)) as hubspot:
        record = (await read_all(hubspot))[0].records[0]
    assert {"email", "firstname", "lastname", "phone", "company", "jobtitle"} <= set(record["properties"])
    assert hubspot.updated_at("contacts", record) == record["updatedAt"]


async def test_archived_contacts_are_not_listed() -> None:
    sim = simulator(20)
    archived = sim.delete(5)
    async with open_hubspot(sim) as hubspot:
        listed = [hubspot.record_id("contacts", r) for page in await read_all(hubspot) for r in page.records]
    assert len(listed) == 15 and not set(listed) & set(archived)


async def test_get_by_id() -> None:
    sim = simulator(10)
    wanted = sim.ids()[4]
    async with open_hubspot(sim) as hubspot:
        record = await hubspot.get("contacts", wanted)
    assert record is not None and record["id"] == wanted and "@example.org" in record["properties"]["email"]


@pytest.mark.parametrize("record_id", ["archived", "99999999999", "not-a-number"])
async def test_get_of_an_archived_or_unknown_id_is_none(record_id: str) -> None:
    sim = simulator(10)
    archived = sim.delete(1)[0]
    async with open_hubspot(sim) as hubspot:
        assert await hubspot.get("contacts", archived if record_id == "archived" else record_id) is None


async def test_a_ten_secondly_429_is_retried_after_the_hooks_wait(waits: list[float]) -> None:
    sim = simulator(250)
    sim.inject(status_429=2)
    async with open_hubspot(sim) as hubspot:
        pages = await read_all(hubspot)
    assert waits == [0.05, 0.05]
    assert sum(len(page.records) for page in pages) == 250 and sim.stats()["list_requests"] == 5


async def test_a_ten_secondly_429_recovers_for_real() -> None:
    sim = simulator(150)
    sim.inject(status_429=1)
    async with open_hubspot(sim) as hubspot:
        pages = await read_all(hubspot)
    assert sum(len(page.records) for page in pages) == 150


async def test_the_daily_limit_is_not_slept_through(waits: list[float]) -> None:
    sim = simulator(10, daily_limit=0)
    async with open_hubspot(sim) as hubspot:
        with pytest.raises(RetryableError, match="answered 429") as caught:
            await read_all(hubspot)
    assert caught.value.retry_after == 86_400.0
    assert waits == [] and sim.stats()["list_requests"] == 1


async def test_a_500_is_retried(waits: list[float]) -> None:
    sim = simulator(150)
    sim.inject(status_500=1)
    async with open_hubspot(sim) as hubspot:
        pages = await read_all(hubspot)
    assert sum(len(page.records) for page in pages) == 150 and len(waits) == 1


async def test_a_wrong_token_is_an_auth_error_without_the_token() -> None:
    wrong = "pat-na1-wrong-token-0000"
    async with open_hubspot(simulator(10), token=wrong) as hubspot:
        with pytest.raises(AuthError, match="answered 401") as caught:
            await read_all(hubspot)
    assert wrong not in str(caught.value) and wrong not in repr(hubspot)


async def test_a_wrong_token_on_get_is_an_auth_error() -> None:
    sim = simulator(10)
    async with open_hubspot(sim, token="pat-na1-wrong-token-0000") as hubspot:
        with pytest.raises(AuthError):
            await hubspot.get("contacts", sim.ids()[0])


async def test_a_malformed_page_is_malformed() -> None:
    sim = simulator(150)
    sim.inject(malformed=1)
    async with open_hubspot(sim) as hubspot:
        with pytest.raises(MalformedPage, match=f"hubspot: the page {BASE}/crm/v3/objects/contacts.* is not JSON"):
            await read_all(hubspot)


# -- the retry_after hook on its own ---------------------------------------------------------------


def rate_limited(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.Response(429, content=content, headers=headers)


@pytest.mark.parametrize(
    ("body", "headers", "seconds"),
    [
        ({"policyName": "TEN_SECONDLY_ROLLING"}, {"X-HubSpot-RateLimit-Interval-Milliseconds": "50"}, 0.05),
        ({"policyName": "TEN_SECONDLY_ROLLING"}, {}, 10.0),
        ({"policyName": "TEN_SECONDLY_ROLLING"}, {"X-HubSpot-RateLimit-Interval-Milliseconds": "soon"}, 10.0),
        ({"policyName": "DAILY"}, {}, 86_400.0),
        ({"message": "You have reached your secondly limit."}, {}, 1.0),
        ({"message": "slow down"}, {}, None),
        (["not", "an", "object"], {}, None),
        (b"<html>429</html>", {}, None),
    ],
)
def test_retry_after_hook(body: Any, headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(rate_limited(body, headers)) == seconds


def test_the_hubspot_spec_provides_users_from_contacts() -> None:
    spec, _ = registry.load("hubspot")
    assert spec.collection_for("users") == "contacts"


def test_the_request_budget_stays_under_100_per_10_seconds() -> None:
    spec, _ = registry.load("hubspot")
    assert spec.rate_limit == RateLimit(requests=95, per_seconds=10)
    budget = open_hubspot(simulator(1)).budget
    assert budget is not None and (budget.requests, budget.per_seconds) == (95, 10)


# -- incremental pulls: search by lastmodifieddate, deletions from the archived listing ---------------


def highest_stamp(sim: HubSpotSimulator) -> int:
    return max(max(p.modified_ms, p.deleted_ms or 0) for p in sim.people.all)


async def test_a_first_pull_searches_every_live_contact_and_hands_out_the_highest_timestamp() -> None:
    sim = simulator(450)
    sim.delete(3)
    async with open_hubspot(sim) as hubspot:
        first = await pull_changes(hubspot, "contacts")
    assert sorted(c.external_id for c in first.changes) == sorted(sim.ids())
    assert {c.kind for c in first.changes} == {"upsert"} and sim.stats()["search_requests"] == 3
    assert first.since == str(highest_stamp(sim)) and sim.stats()["list_requests"] == 1


async def test_a_later_pull_has_the_upserts_from_search_and_the_deletions_from_the_archive() -> None:
    sim = simulator(50)
    sim.delete(2)  # archived before the first pull: never imported, not reported
    async with open_hubspot(sim) as hubspot:
        first = await pull_changes(hubspot, "contacts")
        created, updated, deleted = sim.create(2), sim.update(sim.ids()[5:8]), sim.delete(sim.ids()[:2])
        later = await pull_changes(hubspot, "contacts", first.since)
        again = await pull_changes(hubspot, "contacts", later.since)
    assert {c.external_id for c in later.changes if c.kind == "upsert"} == set(created) | set(updated)
    assert {c.external_id for c in later.changes if c.kind == "deleted"} == set(deleted)
    assert later.since == str(highest_stamp(sim)) and again.changes == [] and again.since == later.since


async def test_a_watermark_may_be_iso_and_a_deletion_carries_its_archived_time() -> None:
    sim = simulator(5)
    before = sim.people.tick()
    [gone] = sim.delete(1)
    async with open_hubspot(sim) as hubspot:
        pulled = await pull_changes(hubspot, "contacts", "2024-01-01T00:00:00.000Z")
    [deletion] = [c for c in pulled.changes if c.kind == "deleted"]
    assert deletion.external_id == gone and deletion.updated_at is not None and deletion.updated_at.endswith("Z")
    assert int(pulled.since or 0) > before


async def test_more_than_10000_changed_contacts_are_each_returned_once_across_the_search_cap() -> None:
    sim = simulator(10_300)
    async with open_hubspot(sim, budget=RequestBudget(10_000, 1)) as hubspot:
        pulled = await pull_changes(hubspot, "contacts", "0")
    counted = Counter(c.external_id for c in pulled.changes)
    assert counted == Counter(sim.ids()) and len(pulled.changes) == 10_300
    assert sim.stats()["search_requests"] >= 52


async def test_more_than_10000_contacts_sharing_one_timestamp_are_walked_by_object_id() -> None:
    sim = simulator(10_250)
    for person in sim.people.all:
        person.modified_ms = 1_714_564_800_000  # one bulk import
    async with open_hubspot(sim, budget=RequestBudget(10_000, 1)) as hubspot:
        pulled = await pull_changes(hubspot, "contacts", "1714564799999")
    assert Counter(c.external_id for c in pulled.changes) == Counter(sim.ids())
    assert pulled.since == "1714564800000"


async def test_a_429_during_a_search_is_waited_out_by_the_policy(waits: list[float]) -> None:
    sim = simulator(30)
    sim.inject(status_429=1)
    async with open_hubspot(sim) as hubspot:
        pulled = await pull_changes(hubspot, "contacts")
    assert waits == [0.05] and len(pulled.changes) == 30


async def test_an_expired_token_cannot_happen_so_an_old_watermark_is_answered_in_full() -> None:
    sim = simulator(20)
    sim.inject(expire_tokens=True)
    async with open_hubspot(sim) as hubspot:
        pulled = await pull_changes(hubspot, "contacts", "1")
    assert not pulled.resynced and sorted(c.external_id for c in pulled.changes) == sorted(sim.ids())


# -- webhooks: the spec's test vector ---------------------------------------------------------------

SECRET = "hs-client-secret-123"
URI = "https://example.com/webhooks/hubspot?tenant=acme"
STAMP = "1714564801000"
NOW = 1_714_564_801.0 + 60
VECTOR = (
    b'[{"eventId":100,"subscriptionId":200,"portalId":300,"appId":400,"occurredAt":1714564800000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":51,"changeFlag":"CREATED",'
    b'"changeSource":"CRM_UI"}]'
)
V3 = "7MVr/TbjSSsLlfkQMNCC7oRVk051arBFLdC1IfgpqYI="
V1 = "26031c435260f17465a7e811d7119d8ba117bd8d36d9b63677dec0fa55dab048"
V2 = "3d05e96e261130b481aee4d67c99079458490c3d192e8cd18441966dcc02d557"


def delivery(headers: dict[str, str], body: bytes = VECTOR, url: str = URI) -> WebhookRequest:
    return WebhookRequest(method="POST", url=url, headers=httpx.Headers(headers), body=body)


def v3(signature: str = V3, stamp: str = STAMP) -> dict[str, str]:
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}


@pytest.mark.parametrize(
    "headers",
    [
        v3(),
        {"X-HubSpot-Signature": V1, "X-HubSpot-Signature-Version": "v1"},
        {"X-HubSpot-Signature": V1},
        {"X-HubSpot-Signature": V2.upper(), "X-HubSpot-Signature-Version": "v2"},
    ],
)
def test_the_spec_test_vector_verifies(headers: dict[str, str]) -> None:
    verify_webhook(delivery(headers), SECRET, NOW)


@pytest.mark.parametrize(
    ("request_", "secret", "now", "reason"),
    [
        (delivery(v3(), body=VECTOR.replace(b"51", b"52")), SECRET, NOW, "does not match"),
        (delivery(v3()), "another-secret", NOW, "does not match"),
        (delivery(v3(), url=URI + "&x=1"), SECRET, NOW, "does not match"),
        (delivery(v3()), SECRET, 1_714_564_801.0 + 301, "five minutes"),
        (delivery({"X-HubSpot-Signature-v3": V3}), SECRET, NOW, "Timestamp"),
        (delivery({}), SECRET, NOW, "no X-HubSpot-Signature"),
        (delivery({"X-HubSpot-Signature": V1}, body=VECTOR + b" "), SECRET, NOW, "does not match"),
        (delivery({"X-HubSpot-Signature": V2, "X-HubSpot-Signature-Version": "v1"}), SECRET, NOW, "does not match"),
        (delivery({"X-HubSpot-Signature": V1, "X-HubSpot-Signature-Version": "v9"}), SECRET, NOW, "version"),
    ],
)
def test_forged_stale_or_unsigned_webhooks_are_rejected(
    request_: WebhookRequest, secret: str, now: float, reason: str
) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        verify_webhook(request_, secret, now)


def test_v3_signs_the_uri_with_the_listed_escapes_decoded() -> None:
    received = "https://example.com/webhooks/hubspot%3Ftenant%3Dacme%2Cbeta%40x"
    signed = "https://example.com/webhooks/hubspot?tenant%3Dacme,beta@x"  # %3D is not on HubSpot's list
    digest = hmac.new(SECRET.encode(), b"POST" + signed.encode() + VECTOR + STAMP.encode(), hashlib.sha256)
    verify_webhook(delivery(v3(base64.b64encode(digest.digest()).decode()), url=received), SECRET, NOW)


def test_the_test_vector_parses_to_one_upsert_with_a_string_id() -> None:
    assert parse_webhook(delivery(v3())) == [WebhookEvent("upsert", "51", "2024-05-01T12:00:00.000Z", "100")]


def event(event_id: int, kind: str, occurred: int, **fields: Any) -> dict[str, Any]:
    return {"eventId": event_id, "subscriptionType": kind, "occurredAt": occurred, "attemptNumber": 0, **fields}


def test_a_batch_is_deduplicated_on_event_id_and_ordered_by_occurrence() -> None:
    batch = [
        event(3, "contact.deletion", 1_714_564_809_000, objectId=52),
        event(1, "contact.creation", 1_714_564_800_123, objectId=51),
        event(2, "contact.propertyChange", 1_714_564_805_000, objectId=51, propertyName="email"),
        event(1, "contact.creation", 1_714_564_800_123, objectId=51, attemptNumber=1),
        event(4, "contact.privacyDeletion", 1_714_564_810_000, objectId=53),
        event(5, "company.creation", 1_714_564_811_000, objectId=9),
        event(6, "contact.associationChange", 1_714_564_812_000, objectId=51),
    ]
    parsed = parse_webhook(delivery({}, body=orjson.dumps(batch)))
    assert [(e.kind, e.external_id, e.event_id) for e in parsed] == [
        ("upsert", "51", "1"),
        ("upsert", "51", "2"),
        ("deleted", "52", "3"),
        ("deleted", "53", "4"),
    ]


def test_a_merge_upserts_the_kept_contact_and_deletes_the_merged_ones() -> None:
    merge = event(7, "contact.merge", 1_714_564_800_000, primaryObjectId=51, mergedObjectIds=[52, 53], newObjectId=51)
    parsed = parse_webhook(delivery({}, body=orjson.dumps([merge])))
    assert [(e.kind, e.external_id) for e in parsed] == [("upsert", "51"), ("deleted", "52"), ("deleted", "53")]
    assert len({e.event_id for e in parsed}) == 3


@pytest.mark.parametrize("body", [b"not json", b'{"eventId": 1}'])
def test_a_body_that_is_not_an_event_array_is_rejected(body: bytes) -> None:
    with pytest.raises(WebhookRejected):
        parse_webhook(delivery({}, body=body))


def test_the_webhook_account_is_the_portal_id_of_the_delivery() -> None:
    from connectors.hubspot.hooks import webhook_account
    from connectors.webhooks import WebhookRequest

    def request(body: bytes) -> WebhookRequest:
        return WebhookRequest("POST", "https://inlet.example/webhooks/hubspot", httpx.Headers(), body)

    assert webhook_account(request(b'[{"portalId": 44556677, "objectId": 51}]')) == "44556677"
    assert [webhook_account(request(b)) for b in (b"[]", b"{}", b"not json")] == [None, None, None]
