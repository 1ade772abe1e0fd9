"""Behaviour of the HubSpot CRM v3 contacts simulator, checked against api-specs/hubspot.md."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from connectors.hubspot.simulator import DEFAULT_PROPERTIES, DEFAULT_TOKEN, HubSpotSimulator

BASE = "https://api.hubapi.com"
CONTACTS = "/crm/v3/objects/contacts"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def client(sim: HubSpotSimulator, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    auth = {"Authorization": f"Bearer {DEFAULT_TOKEN}"} if headers is None else headers
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=auth)


async def list_all(c: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        body = (await c.get(CONTACTS, params={**params, **({"after": after} if after else {})})).json()
        pages.append(body)
        if "paging" not in body:
            return pages
        after = body["paging"]["next"]["after"]


async def test_pages_to_the_end_and_last_page_has_no_paging() -> None:
    async with client(HubSpotSimulator(records=250)) as c:
        pages = await list_all(c, limit="100")
    ids = [r["id"] for page in pages for r in page["results"]]
    assert [len(p["results"]) for p in pages] == [100, 100, 50]
    assert len(set(ids)) == 250 and ids == sorted(ids, key=int)
    assert "paging" not in pages[-1]
    assert pages[0]["paging"]["next"]["link"].startswith(f"{BASE}{CONTACTS}?")


async def test_next_link_is_an_absolute_url_that_fetches_the_next_page() -> None:
    async with client(HubSpotSimulator(records=30)) as c:
        first = (await c.get(CONTACTS, params={"limit": 10, "properties": "email"})).json()
        second = (await c.get(first["paging"]["next"]["link"])).json()
    assert second["results"][0]["id"] == first["paging"]["next"]["after"]
    assert set(second["results"][0]["properties"]) == {"email"}


async def test_limit_over_100_is_a_400_validation_error() -> None:
    async with client(HubSpotSimulator(records=5)) as c:
        response = await c.get(CONTACTS, params={"limit": 101})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]


async def test_limit_over_100_is_capped_when_switched_on() -> None:
    async with client(HubSpotSimulator(records=150, cap_oversized_limit=True)) as c:
        response = await c.get(CONTACTS, params={"limit": 500})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 100


async def test_default_page_has_ten_contacts_with_default_properties() -> None:
    async with client(HubSpotSimulator(records=20)) as c:
        body = (await c.get(CONTACTS)).json()
    assert len(body["results"]) == 10
    contact = body["results"][0]
    assert set(contact["properties"]) == set(DEFAULT_PROPERTIES)
    assert contact["properties"]["hs_object_id"] == contact["id"] and contact["archived"] is False
    assert contact["updatedAt"] == contact["properties"]["lastmodifieddate"]
    assert ISO_MS.match(contact["createdAt"]) and ISO_MS.match(contact["updatedAt"])


async def test_unknown_property_is_ignored_and_values_are_strings_or_null() -> None:
    async with client(HubSpotSimulator(records=40)) as c:
        body = (await c.get(CONTACTS, params={"limit": 40, "properties": "email,phone,no_such_thing"})).json()
    props = [r["properties"] for r in body["results"]]
    assert all(set(p) == {"email", "phone"} for p in props)
    assert None in {p["phone"] for p in props}
    assert all(isinstance(v, str) for p in props for v in p.values() if v is not None)


async def test_get_by_id_returns_one_contact() -> None:
    sim = HubSpotSimulator(records=5)
    contact_id = sim.ids()[2]
    async with client(sim) as c:
        response = await c.get(f"{CONTACTS}/{contact_id}", params={"properties": "jobtitle,company"})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == contact_id and set(body["properties"]) == {"company", "jobtitle"}
    assert "paging" not in body and "results" not in body


async def test_get_by_email_with_id_property() -> None:
    sim = HubSpotSimulator(records=5)
    async with client(sim) as c:
        first = (await c.get(CONTACTS, params={"limit": 1})).json()["results"][0]
        response = await c.get(f"{CONTACTS}/{first['properties']['email']}", params={"idProperty": "email"})
    assert response.json()["id"] == first["id"]


@pytest.mark.parametrize("contact_id", ["999999", "not-a-number"])
async def test_unknown_id_is_a_404_envelope(contact_id: str) -> None:
    async with client(HubSpotSimulator(records=5)) as c:
        response = await c.get(f"{CONTACTS}/{contact_id}")
    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "Object not found.  objectId are usually numeric."
    assert body["context"] == {"id": [contact_id]} and body["category"] == "OBJECT_NOT_FOUND"
    assert list(body) == ["status", "message", "correlationId", "context", "category"]


async def test_archived_contact_is_found_only_with_archived_true() -> None:
    sim = HubSpotSimulator(records=5)
    [archived] = sim.delete([sim.ids()[0]])
    async with client(sim) as c:
        hidden = await c.get(f"{CONTACTS}/{archived}")
        found = await c.get(f"{CONTACTS}/{archived}", params={"archived": "true"})
    assert hidden.status_code == 404 and hidden.json()["category"] == "OBJECT_NOT_FOUND"
    assert found.json()["archived"] is True and ISO_MS.match(found.json()["archivedAt"])


async def test_archived_listing_returns_only_archived_contacts() -> None:
    sim = HubSpotSimulator(records=50)
    archived = sim.delete(3)
    async with client(sim) as c:
        only_archived = (await c.get(CONTACTS, params={"archived": "true"})).json()["results"]
        live = (await c.get(CONTACTS, params={"limit": 100})).json()["results"]
    assert [r["id"] for r in only_archived] == archived
    assert all(r["archived"] is True and ISO_MS.match(r["archivedAt"]) for r in only_archived)
    assert len(live) == 47 and not {r["id"] for r in live} & set(archived)


async def test_cursor_still_works_when_the_next_contact_is_archived_meanwhile() -> None:
    sim = HubSpotSimulator(records=20)
    async with client(sim) as c:
        first = (await c.get(CONTACTS)).json()
        sim.delete([first["paging"]["next"]["after"]])
        rest = await list_all(c, after=first["paging"]["next"]["after"])
    assert sum(len(p["results"]) for p in rest) == 9


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": DEFAULT_TOKEN}])
async def test_missing_or_bad_token_is_a_401(headers: dict[str, str]) -> None:
    async with client(HubSpotSimulator(records=5), headers=headers) as c:
        response = await c.get(CONTACTS)
    assert response.status_code == 401
    assert response.json()["category"] == "INVALID_AUTHENTICATION"


async def test_hapikey_is_rejected_even_with_a_good_token() -> None:
    async with client(HubSpotSimulator(records=5)) as c:
        response = await c.get(CONTACTS, params={"hapikey": "legacy-key"})
    assert response.status_code == 401
    assert response.json()["category"] == "INVALID_AUTHENTICATION"


async def test_custom_token_is_required() -> None:
    sim = HubSpotSimulator(records=5, token="pat-na1-other")
    async with client(sim, {"Authorization": "Bearer pat-na1-other"}) as good, client(sim) as default:
        assert (await good.get(CONTACTS)).status_code == 200
        assert (await default.get(CONTACTS)).status_code == 401


async def test_successful_responses_carry_rate_limit_headers() -> None:
    async with client(HubSpotSimulator(records=5, rate_limit=100, daily_limit=250_000)) as c:
        await c.get(CONTACTS)
        headers = (await c.get(CONTACTS)).headers
    assert headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249998"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert headers["X-HubSpot-RateLimit-Max"] == "100"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "98"


async def test_rolling_window_429_then_recovers_after_the_window() -> None:
    async with client(HubSpotSimulator(records=5, rate_limit=3, rate_interval_ms=200)) as c:
        statuses = [(await c.get(CONTACTS)).status_code for _ in range(3)]
        limited = await c.get(CONTACTS)
        await asyncio.sleep(0.25)
        recovered = await c.get(CONTACTS)
    assert statuses == [200, 200, 200] and limited.status_code == 429 and recovered.status_code == 200
    body = limited.json()
    assert list(body) == ["status", "message", "errorType", "correlationId", "policyName", "requestId"]
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert "retry-after" not in limited.headers


async def test_daily_limit_429_names_the_daily_policy() -> None:
    async with client(HubSpotSimulator(records=5, daily_limit=2)) as c:
        ok = [(await c.get(CONTACTS)).status_code for _ in range(2)]
        limited = await c.get(CONTACTS)
    assert ok == [200, 200] and limited.status_code == 429
    assert limited.json()["policyName"] == "DAILY" and limited.json()["errorType"] == "RATE_LIMIT"
    assert "retry-after" not in limited.headers


async def test_injected_faults_answer_429_then_500_then_a_non_json_body() -> None:
    sim = HubSpotSimulator(records=5)
    sim.inject(status_429=1, status_500=1, malformed=1)
    async with client(sim) as c:
        responses = [await c.get(CONTACTS) for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 500, 200, 200]
    assert responses[0].json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert responses[1].json()["status"] == "error"
    with pytest.raises(ValueError):
        responses[2].json()
    assert len(responses[3].json()["results"]) == 5


async def test_faults_endpoint_applies_to_get_by_id_and_slows_pages() -> None:
    sim = HubSpotSimulator(records=5)
    async with client(sim) as c:
        await c.post("/_sim/faults", json={"status_500": 1, "slow_seconds": 0.05})
        failed = await c.get(f"{CONTACTS}/{sim.ids()[0]}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        ok = await c.get(f"{CONTACTS}/{sim.ids()[0]}")
        elapsed = loop.time() - started
    assert failed.status_code == 500 and ok.status_code == 200 and elapsed >= 0.05


async def test_mutate_endpoint_creates_updates_and_archives() -> None:
    sim = HubSpotSimulator(records=10)
    first, second = sim.ids()[:2]
    before = sim.ids()
    async with client(sim, headers={}) as c:  # control endpoints need no token
        body = (await c.post("/_sim/mutate", json={"create": 2, "update": [first], "delete": [second]})).json()
        stats = (await c.get("/_sim/stats")).json()
    assert len(body["created"]) == 2 and min(map(int, body["created"])) > max(map(int, before))
    assert body["updated"] == [first] and body["deleted"] == [second]
    assert stats["records"] == 11 and stats["archived"] == 1


async def test_update_bumps_lastmodifieddate_and_changes_jobtitle() -> None:
    sim = HubSpotSimulator(records=3)
    contact_id = sim.ids()[0]
    async with client(sim) as c:
        url, params = f"{CONTACTS}/{contact_id}", {"properties": "jobtitle,lastmodifieddate"}
        before = (await c.get(url, params=params)).json()
        sim.update([contact_id])
        sim.update([contact_id])
        after = (await c.get(url, params=params)).json()
    assert after["updatedAt"] > before["updatedAt"] and after["updatedAt"] == after["properties"]["lastmodifieddate"]
    assert sim.update(2) != [] and sim.update(["404", contact_id]) == [contact_id]


async def test_bad_mutate_body_is_a_400() -> None:
    async with client(HubSpotSimulator(records=3), headers={}) as c:
        response = await c.post("/_sim/mutate", json={"create": -1})
        unknown = await c.post("/_sim/faults", json={"status_503": 1})
    assert response.status_code == 400 and unknown.status_code == 400


async def test_stats_count_requests_and_reset_clears_faults_and_counters() -> None:
    sim = HubSpotSimulator(records=5)
    sim.inject(status_500=5)
    async with client(sim) as c:
        await c.get(CONTACTS)
        await c.get(f"{CONTACTS}/{sim.ids()[0]}")
        counted = (await c.get("/_sim/stats")).json()
        await c.post("/_sim/reset")
        after_reset = await c.get(CONTACTS)
    assert counted == {"requests": 2, "list_requests": 1, "get_requests": 1, "records": 5, "archived": 0}
    assert after_reset.status_code == 200 and sim.stats()["requests"] == 1


async def test_same_seed_gives_the_same_contacts() -> None:
    pages: list[dict[str, Any]] = []
    for seed in (7, 7, 8):
        async with client(HubSpotSimulator(records=20, seed=seed)) as c:
            pages.append((await c.get(CONTACTS, params={"properties": "email,phone,company"})).json())
    assert pages[0] == pages[1] and pages[0] != pages[2]


async def test_seeded_contacts_have_large_ascending_string_ids_and_unique_emails() -> None:
    async with client(HubSpotSimulator(records=1000, seed=3)) as c:
        contacts = [r for page in await list_all(c, limit="100") for r in page["results"]]
    ids = [r["id"] for r in contacts]
    assert all(int(i) > 2**32 for i in ids) and ids == sorted(ids, key=int) and len(set(ids)) == 1000
    assert len({r["properties"]["email"] for r in contacts}) == 1000
