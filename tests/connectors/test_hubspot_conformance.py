"""The HubSpot simulator against the facts of api-specs/hubspot.md it serves beyond listing and search
(connectors/hubspot/CONFORMANCE.md): batch read, property history, associations, date-versioned paths,
archive retention, GDPR deletes, merges, scopes, the account's midnight, and signed app webhooks."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from connectors.hubspot.simulator import DEFAULT_TOKEN, PORTAL_ID, HubSpotSimulator, signature_headers
from tests.support.oauth import asgi_client, token_with_scope
from tests.support.receiver import Receiver

BASE = "https://api.hubapi.com"
CONTACTS = "/crm/v3/objects/contacts"
BATCH = f"{CONTACTS}/batch/read"
SECRET = "hs-client-secret-123"
HOOK = "https://inlet.example/webhooks/hubspot?tenant=acme"
DAY = 86_400


def client(sim: HubSpotSimulator) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=headers)


def hooked(sim: HubSpotSimulator, *subscriptions: Any) -> Receiver:
    sim.configure_webhooks(HOOK, SECRET, subscriptions or ["contact.creation", "contact.deletion"])
    return Receiver("hubspot", SECRET, now=sim.clock.time)


# -- batch read ------------------------------------------------------------------------------------


async def test_batch_read_returns_the_contacts_asked_for_with_timestamps() -> None:
    sim = HubSpotSimulator(5)
    wanted = sim.ids()[1:3]
    async with client(sim) as c:
        body = (await c.post(BATCH, json={"properties": ["email"], "inputs": [{"id": i} for i in wanted]})).json()
    assert body["status"] == "COMPLETE" and [r["id"] for r in body["results"]] == wanted
    assert set(body["results"][0]["properties"]) == {"email"} and body["completedAt"] >= body["startedAt"]


async def test_batch_read_by_email_and_missing_ids_answer_207_with_object_not_found() -> None:
    sim = HubSpotSimulator(3)
    email = sim.people.all[0].email
    async with client(sim) as c:
        answer = await c.post(BATCH, json={"idProperty": "email", "inputs": [{"id": email}, {"id": "no@x.org"}]})
    body = answer.json()
    assert answer.status_code == 207 and body["numErrors"] == 1 and body["results"][0]["id"] == sim.ids()[0]
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"] == {"ids": ["no@x.org"]}


async def test_batch_read_takes_at_most_100_inputs() -> None:
    async with client(HubSpotSimulator(3)) as c:
        answer = await c.post(BATCH, json={"inputs": [{"id": str(i)} for i in range(101)]})
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"


async def test_batch_read_of_archived_contacts_needs_archived_true() -> None:
    sim = HubSpotSimulator(3)
    gone = sim.delete(sim.ids()[:1])
    async with client(sim) as c:
        live = await c.post(BATCH, json={"inputs": [{"id": gone[0]}]})
        archived = await c.post(BATCH, params={"archived": "true"}, json={"inputs": [{"id": gone[0]}]})
    assert live.status_code == 207 and archived.json()["results"][0]["archived"] is True


# -- properties with history, associations, versioned paths ------------------------------------------


async def test_properties_with_history_lists_versions_newest_first() -> None:
    sim = HubSpotSimulator(2)
    contact = sim.ids()[0]
    first = sim.people.all[0].title
    sim.update([contact], {"title": "CEO"})
    async with client(sim) as c:
        body = (await c.get(f"{CONTACTS}/{contact}", params={"propertiesWithHistory": "jobtitle"})).json()
    versions = body["propertiesWithHistory"]["jobtitle"]
    assert [v["value"] for v in versions] == ["CEO", first] and versions[0]["timestamp"] > versions[1]["timestamp"]
    assert {v["sourceType"] for v in versions} == {"CRM_UI"}


async def test_associations_companies_lists_the_contacts_company() -> None:
    async with client(HubSpotSimulator(2)) as c:
        body = (await c.get(CONTACTS, params={"associations": "companies,deals"})).json()
    links = body["results"][0]["associations"]
    assert list(links) == ["companies"] and links["companies"]["results"][0]["type"] == "contact_to_company"


async def test_date_versioned_paths_serve_the_same_contacts_and_refuse_other_versions() -> None:
    sim = HubSpotSimulator(3)
    async with client(sim) as c:
        listed = (await c.get("/crm/objects/2026-03/contacts")).json()
        searched = (await c.post("/crm/objects/2026-03/contacts/search", json={})).json()
        unknown = await c.get("/crm/objects/v9/contacts")
    assert [r["id"] for r in listed["results"]] == sim.ids() == [r["id"] for r in searched["results"]]
    assert unknown.status_code == 404


# -- archive, GDPR delete, merge, scopes, the daily reset --------------------------------------------


async def test_archived_contacts_are_restorable_for_90_days_then_gone() -> None:
    sim = HubSpotSimulator(3)
    kept, lapsed = sim.delete(sim.ids()[:1]), sim.delete(sim.ids()[:1])
    sim.restore(kept)
    sim.advance(91 * DAY)
    async with client(sim) as c:
        archived = (await c.get(CONTACTS, params={"archived": "true"})).json()["results"]
        fetched = await c.get(f"{CONTACTS}/{lapsed[0]}", params={"archived": "true"})
    assert kept[0] in sim.ids() and archived == [] and fetched.status_code == 404


async def test_a_gdpr_delete_leaves_no_archived_record() -> None:
    sim = HubSpotSimulator(3)
    gone = sim.purge(sim.ids()[:1])
    async with client(sim) as c:
        archived = (await c.get(CONTACTS, params={"archived": "true"})).json()["results"]
    assert archived == [] and gone[0] not in sim.ids() and sim.restore(gone) == []


async def test_a_merge_keeps_the_primary_with_hs_merged_object_ids() -> None:
    sim = HubSpotSimulator(4)
    primary, *others = sim.ids()[:3]
    assert sim.merge(primary, others) == others
    async with client(sim) as c:
        body = (await c.get(f"{CONTACTS}/{primary}", params={"properties": "hs_merged_object_ids"})).json()
        merged_away = await c.get(f"{CONTACTS}/{others[0]}")
    assert body["properties"]["hs_merged_object_ids"] == ";".join(others) and merged_away.status_code == 404


async def test_an_oauth_token_without_the_contacts_read_scope_is_403_missing_scopes() -> None:
    sim = HubSpotSimulator(2)
    async with asgi_client(sim) as http:
        narrow = await token_with_scope(http, sim, "oauth")
        granted = await token_with_scope(http, sim, "oauth crm.objects.contacts.read")
        refused = await http.get(CONTACTS, headers={"Authorization": f"Bearer {narrow}"})
        allowed = await http.get(CONTACTS, headers={"Authorization": f"Bearer {granted}"})
    assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES"
    assert refused.json()["errors"][0]["context"] == {"requiredGranularScopes": ["crm.objects.contacts.read"]}
    assert allowed.status_code == 200


async def test_searches_count_toward_the_daily_limit_and_carry_no_rate_headers() -> None:
    sim = HubSpotSimulator(2, daily_limit=1)
    async with client(sim) as c:
        searched = await c.post(f"{CONTACTS}/search", json={})
        listed = await c.get(CONTACTS)
    assert searched.status_code == 200 and "X-HubSpot-RateLimit-Max" not in searched.headers
    assert listed.status_code == 429 and listed.json()["policyName"] == "DAILY"


async def test_the_daily_limit_starts_again_at_the_accounts_midnight() -> None:
    sim = HubSpotSimulator(2, daily_limit=1, time_zone_offset_hours=-5)
    async with client(sim) as c:
        statuses = [(await c.get(CONTACTS)).status_code for _ in range(2)]
        sim.advance(DAY)
        after_midnight = await c.get(CONTACTS)
    assert statuses == [200, 429] and after_midnight.status_code == 200


# -- webhooks ----------------------------------------------------------------------------------------


async def test_mutations_are_delivered_as_signed_event_arrays_the_connector_accepts() -> None:
    sim = HubSpotSimulator(5)
    receiver = hooked(sim, "contact.creation", "contact.deletion", "contact.restore", "contact.privacyDeletion")
    created = sim.create(1)
    deleted = sim.delete(sim.ids()[:2])
    sim.restore(deleted[:1])
    sim.purge(deleted[1:])
    sent = await sim.deliver(receiver.client())
    kinds = [(e.kind, e.external_id) for e in receiver.events()]
    assert [s.status for s in sent] == [200] * 4 and kinds == [
        ("upsert", created[0]),
        ("deleted", deleted[0]),
        ("deleted", deleted[1]),
        ("upsert", deleted[0]),
        ("deleted", deleted[1]),
    ]
    first = receiver.requests[0]
    assert first.headers["X-HubSpot-Signature-Version"] == "v1" and first.url == HOOK


async def test_a_property_change_is_sent_only_for_a_subscribed_property() -> None:
    sim = HubSpotSimulator(3)
    receiver = hooked(sim, {"eventType": "contact.propertyChange", "propertyName": "jobtitle"})
    contact = sim.ids()[0]
    sim.update([contact], {"email": "new@example.org"})
    sim.update([contact], {"title": "CEO"})
    await sim.deliver(receiver.client())
    [event] = orjson.loads(receiver.requests[0].body)
    assert len(receiver.requests) == 1 and (event["propertyName"], event["propertyValue"]) == ("jobtitle", "CEO")
    assert event["portalId"] == PORTAL_ID and isinstance(event["objectId"], int) and event["attemptNumber"] == 0
    only_v1 = receiver.requests[0]
    del only_v1.headers["X-HubSpot-Signature-v3"]
    assert len(receiver.parse(only_v1)) == 1  # the v1 signature alone verifies too


VECTOR = (
    b'[{"eventId":100,"subscriptionId":200,"portalId":300,"appId":400,"occurredAt":1714564800000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":51,"changeFlag":"CREATED",'
    b'"changeSource":"CRM_UI"}]'
)


@pytest.mark.parametrize(
    ("version", "header", "expected"),
    [
        ("v1", "X-HubSpot-Signature", "26031c435260f17465a7e811d7119d8ba117bd8d36d9b63677dec0fa55dab048"),
        ("v2", "X-HubSpot-Signature", "3d05e96e261130b481aee4d67c99079458490c3d192e8cd18441966dcc02d557"),
        ("v1", "X-HubSpot-Signature-v3", "7MVr/TbjSSsLlfkQMNCC7oRVk051arBFLdC1IfgpqYI="),
    ],
)
def test_the_simulator_signs_the_specs_test_vector(version: str, header: str, expected: str) -> None:
    headers = signature_headers(
        "https://example.com/webhooks/hubspot?tenant=acme", SECRET, version, VECTOR, "1714564801000"
    )
    assert headers[header] == expected and headers["X-HubSpot-Request-Timestamp"] == "1714564801000"


async def test_events_come_in_batches_of_at_most_100() -> None:
    sim = HubSpotSimulator(0)
    receiver = hooked(sim)
    sim.create(150)
    await sim.deliver(receiver.client())
    assert [len(receiver.parse(r)) for r in receiver.requests] == [100, 50]


async def test_a_failed_batch_is_retried_with_a_higher_attempt_number_but_a_404_is_not() -> None:
    sim = HubSpotSimulator(2)
    receiver = hooked(sim)
    receiver.statuses = [500, 404]
    sim.create(1)
    first = await sim.deliver(receiver.client())
    early = await sim.deliver(receiver.client())
    sim.advance(120)
    second = await sim.deliver(receiver.client())
    stamps = [int(r.headers["X-HubSpot-Request-Timestamp"]) for r in receiver.requests]
    assert [s.status for s in first] == [500] and early == [] and [s.attempt for s in second] == [1]
    assert stamps[1] - stamps[0] >= 120_000 and len(receiver.parse(receiver.requests[1])) == 1  # signed afresh
    sim.advance(10 * DAY)
    assert second[0].status == 404 and await sim.deliver(receiver.client()) == []


async def test_a_failing_receiver_gets_10_resends_and_no_more() -> None:
    sim = HubSpotSimulator(1)
    receiver = hooked(sim)
    receiver.statuses = [503] * 20
    sim.create(1)
    attempts = []
    for _ in range(13):
        attempts += [s.attempt for s in await sim.deliver(receiver.client())]
        sim.advance(30 * DAY)
    assert attempts == list(range(11))


async def test_a_delivery_without_an_answer_is_retried() -> None:
    sim = HubSpotSimulator(1)
    sim.configure_webhooks(HOOK, SECRET, ["contact.creation"])
    sim.create(1)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(unreachable)) as down:
        [failed] = await sim.deliver(down)
    assert failed.status is None and failed.retry_at is not None
    assert sim.outbox is not None and len(sim.outbox.pending()) == 1


async def test_a_receivers_429_retry_after_is_honoured() -> None:
    sim = HubSpotSimulator(2)
    receiver = hooked(sim)
    receiver.statuses = [(429, {"Retry-After": "7"})]
    sim.create(1)
    [throttled] = await sim.deliver(receiver.client())
    assert throttled.retry_at is not None and throttled.retry_at - sim.clock.time() == pytest.approx(7, abs=1)


async def test_merges_are_announced_and_the_connector_keeps_the_primary() -> None:
    sim = HubSpotSimulator(3)
    receiver = hooked(sim, "contact.merge")
    primary, merged = sim.ids()[0], sim.ids()[1]
    sim.merge(primary, [merged])
    await sim.deliver(receiver.client())
    assert sorted((e.kind, e.external_id) for e in receiver.events()) == [("deleted", merged), ("upsert", primary)]


@pytest.mark.parametrize(("duplicates", "shuffle"), [(True, False), (False, True)])
async def test_duplicated_or_reordered_events_still_parse_to_each_change_once(duplicates: bool, shuffle: bool) -> None:
    sim = HubSpotSimulator(0, webhook_duplicates=duplicates, webhook_shuffle=shuffle)
    receiver = hooked(sim)
    created = sim.create(3)
    await sim.deliver(receiver.client())
    events = receiver.parse(receiver.requests[0])
    assert [e.external_id for e in events] == created


async def test_webhook_settings_over_http_and_v2_signatures() -> None:
    sim = HubSpotSimulator(1)
    settings = {"targetUrl": HOOK, "clientSecret": SECRET, "subscriptions": ["contact.creation"]}
    async with client(sim) as c:
        saved = await c.put("/_sim/webhooks/settings", json={**settings, "signatureVersion": "v2"})
        bad = await c.put("/_sim/webhooks/settings", json={**settings, "subscriptions": ["deal.creation"]})
    receiver = Receiver("hubspot", SECRET, now=sim.clock.time)
    sim.create(1)
    await sim.deliver(receiver.client())
    only_v2 = receiver.requests[0]
    del only_v2.headers["X-HubSpot-Signature-v3"]
    assert saved.json()["subscriptions"][0]["eventType"] == "contact.creation" and bad.status_code == 400
    assert only_v2.headers["X-HubSpot-Signature-Version"] == "v2" and len(receiver.parse(only_v2)) == 1
