"""Behaviour of the HubSpot CRM v3 contacts simulator, checked against api-specs/hubspot.md."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import orjson
import pytest

from connectors.base import to_iso
from connectors.hubspot import simulator as module
from connectors.hubspot.simulator import DEFAULT_PROPERTIES, DEFAULT_TOKEN, HubSpotSimulator, make_simulator
from connectors.simulation import SimulatorBase

BASE = "https://api.hubapi.com"
CONTACTS = "/crm/v3/objects/contacts"
SEARCH = "/crm/v3/objects/contacts/search"
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


# -- the port onto SimulatorBase -------------------------------------------------------------------


def test_make_simulator_builds_on_the_shared_base_and_connects_with_a_bearer_token() -> None:
    sim = make_simulator(records=3, seed=1, token="pat-na1-x")
    parameters, credentials = sim.connection("http://sim")
    assert isinstance(sim, SimulatorBase) and sim.connector == "hubspot" and sim.ids() == HubSpotSimulator(3).ids()
    assert parameters == {"base_url": "http://sim"} and credentials["token"].get_secret_value() == "pat-na1-x"


async def test_repeat_token_hands_out_the_requested_cursor_again() -> None:
    sim = HubSpotSimulator(records=30)
    sim.inject(repeat_token=1)
    async with client(sim) as c:
        first = (await c.get(CONTACTS)).json()["paging"]["next"]["after"]
        second = (await c.get(CONTACTS, params={"after": first})).json()["paging"]["next"]["after"]
        third = (await c.get(CONTACTS, params={"after": first})).json()["paging"]["next"]["after"]
    assert second == first and third != first


async def test_faults_endpoint_accepts_the_shared_faults_and_rejects_bad_values() -> None:
    async with client(HubSpotSimulator(records=3), headers={}) as c:
        ok = await c.post("/_sim/faults", json={"retry_after": 0.5, "expire_tokens": True, "repeat_token": 1})
        negative = await c.post("/_sim/faults", json={"status_429": -1})
        slow = await c.post("/_sim/faults", json={"slow_seconds": "soon"})
    assert ok.status_code == 200 and ok.json()["repeat_token"] == 1 and ok.json()["expire_tokens"] is True
    assert negative.status_code == 400 and slow.status_code == 400


def test_main_serves_with_the_hubspot_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[Any, list[str]]] = []
    monkeypatch.setattr(module, "serve", lambda make, _, argv: served.append((make, list(argv))))
    module.main(
        ["--port", "8410", "--records", "5", "--rate-limit", "3", "--daily-limit", "9", "--cap-oversized-limit"]
    )
    [(make, argv)] = served
    sim = make(records=5, seed=0, token="t")
    assert argv == ["--port", "8410", "--records", "5", "--token", DEFAULT_TOKEN]
    assert (sim.rate_limit, sim.daily_limit, sim.cap_oversized_limit, len(sim.ids())) == (3, 9, True, 5)


# -- search ----------------------------------------------------------------------------------------


def where(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"filterGroups": [{"filters": [{"propertyName": field, "operator": operator, "value": value}]}]}


async def search(c: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await c.post(SEARCH, json=body)


async def test_search_gte_lastmodifieddate_takes_epoch_ms_or_iso_and_sorts_ascending() -> None:
    sim = HubSpotSimulator(records=60)
    middle = sorted(p.modified_ms for p in sim.people.all)[30]
    ascending = {"sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 200}
    async with client(sim) as c:
        by_ms = (await search(c, {**where("lastmodifieddate", "GTE", str(middle)), **ascending})).json()
        by_number = (await search(c, {**where("lastmodifieddate", "GTE", middle), **ascending})).json()
        by_iso = (await search(c, {**where("lastmodifieddate", "GTE", to_iso(middle)), **ascending})).json()
    stamps = [r["properties"]["lastmodifieddate"] for r in by_ms["results"]]
    assert by_ms["total"] == 30 and len(stamps) == 30 and stamps == sorted(stamps) and "paging" not in by_ms
    assert by_ms == by_number == by_iso and set(by_ms["results"][0]["properties"]) == set(DEFAULT_PROPERTIES)


async def test_search_pages_with_an_offset_after_and_no_link() -> None:
    async with client(HubSpotSimulator(records=25)) as c:
        first = (await search(c, {"limit": 10})).json()
        last = (await search(c, {"limit": 10, "after": "20"})).json()
    assert first["total"] == 25 and first["paging"] == {"next": {"after": "10"}}
    assert len(last["results"]) == 5 and "paging" not in last


async def test_search_limit_over_200_is_a_400() -> None:
    async with client(HubSpotSimulator(records=5)) as c:
        ok, over = await search(c, {"limit": 200}), await search(c, {"limit": 201})
    assert ok.status_code == 200 and over.status_code == 400 and over.json()["category"] == "VALIDATION_ERROR"


async def test_search_stops_at_10000_results_and_answers_400_beyond_while_total_counts_all() -> None:
    async with client(HubSpotSimulator(records=10_050)) as c:
        edge = (await search(c, {"limit": 200, "after": "9800"})).json()
        beyond = await search(c, {"limit": 200, "after": edge["paging"]["next"]["after"]})
        straddling = await search(c, {"limit": 200, "after": "9900"})
    assert edge["total"] == 10_050 and len(edge["results"]) == 200 and edge["paging"]["next"]["after"] == "10000"
    assert beyond.status_code == 400 and straddling.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"


async def test_search_never_returns_archived_contacts() -> None:
    sim = HubSpotSimulator(records=20)
    archived = set(sim.delete(5))
    async with client(sim) as c:
        body = (await search(c, {"limit": 100})).json()
    assert body["total"] == 15 and not archived & {r["id"] for r in body["results"]}


async def test_search_ors_groups_and_ands_filters_within_a_group() -> None:
    sim = HubSpotSimulator(records=40)
    people = sim.people.all
    email = {"propertyName": "email", "operator": "EQ", "value": people[3].email}
    same_company = {"propertyName": "company", "operator": "EQ", "value": people[5].company}
    has_phone = {"propertyName": "phone", "operator": "HAS_PROPERTY"}
    groups = [{"filters": [email]}, {"filters": [same_company, has_phone]}]
    async with client(sim) as c:
        body = (await search(c, {"filterGroups": groups, "limit": 100})).json()
    expected = {p.seq for p in people if p.seq == 3 or (p.company == people[5].company and p.phone)}
    assert {r["id"] for r in body["results"]} == {sim.external_id(people[seq]) for seq in expected}


@pytest.mark.parametrize(
    ("filters", "wanted"),
    [
        ([{"propertyName": "hs_object_id", "operator": "IN", "values": ["ID1", "ID4"]}], {1, 4}),
        ([{"propertyName": "hs_object_id", "operator": "NOT_IN", "values": ["ID1"]}], {0, 2, 3, 4}),
        ([{"propertyName": "hs_object_id", "operator": "BETWEEN", "value": "ID1", "highValue": "ID3"}], {1, 2, 3}),
        ([{"propertyName": "hs_object_id", "operator": "GT", "value": "ID3"}], {4}),
        ([{"propertyName": "hs_object_id", "operator": "LTE", "value": "ID1"}], {0, 1}),
        ([{"propertyName": "hs_object_id", "operator": "NEQ", "value": "ID2"}], {0, 1, 3, 4}),
        ([{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*4@example.org"}], {4}),
        ([{"propertyName": "no_such_thing", "operator": "NOT_HAS_PROPERTY"}], {0, 1, 2, 3, 4}),
    ],
)
async def test_search_operators(filters: list[dict[str, Any]], wanted: set[int]) -> None:
    sim = HubSpotSimulator(records=5)
    text = orjson.dumps(filters).decode()
    for seq, contact_id in enumerate(sim.ids()):
        text = text.replace(f"ID{seq}", contact_id)
    async with client(sim) as c:
        body = (await search(c, {"filterGroups": [{"filters": orjson.loads(text)}]})).json()
    assert {r["id"] for r in body["results"]} == {sim.ids()[seq] for seq in wanted}


async def test_search_honours_only_the_first_sort() -> None:
    sorts = [{"propertyName": "createdate", "direction": "DESCENDING"}, {"propertyName": "email"}]
    async with client(HubSpotSimulator(records=12)) as c:
        body = (await search(c, {"sorts": sorts, "limit": 20, "properties": ["createdate"]})).json()
    created = [r["properties"]["createdate"] for r in body["results"]]
    assert created == sorted(created, reverse=True) and set(body["results"][0]["properties"]) == {"createdate"}


@pytest.mark.parametrize(
    "body",
    [
        where("lastmodifieddate", "SOMETIME", "1"),
        where("lastmodifieddate", "GTE", "yesterday"),
        {"filterGroups": [{"filters": []}] * 6},
        {"sorts": [{"propertyName": "email", "direction": "UP"}]},
        {"after": "soon"},
    ],
)
async def test_bad_search_bodies_are_400s(body: dict[str, Any]) -> None:
    async with client(HubSpotSimulator(records=3)) as c:
        response = await search(c, body)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"


async def test_index_lag_hides_fresh_changes_from_search_but_not_from_the_list() -> None:
    sim = HubSpotSimulator(records=3, index_lag_ms=60_000)
    [fresh] = sim.create(1)
    async with client(sim) as c:
        searched = (await search(c, {"limit": 10})).json()
        listed = (await c.get(CONTACTS)).json()
    assert fresh not in {r["id"] for r in searched["results"]} and searched["total"] == 3
    assert fresh in {r["id"] for r in listed["results"]}


async def test_search_secondly_limit_names_it_in_the_message_without_rate_headers() -> None:
    sim = HubSpotSimulator(records=3, search_per_second=1)
    async with client(sim) as c:
        ok, limited = await search(c, {}), await search(c, {})
        listed = await c.get(CONTACTS)
    assert ok.status_code == 200 and "X-HubSpot-RateLimit-Max" not in ok.headers
    assert limited.status_code == 429 and limited.json()["message"] == "You have reached your secondly limit."
    assert listed.status_code == 200 and sim.stats()["search_requests"] == 2


async def test_expire_tokens_changes_nothing_because_hubspot_has_no_tokens() -> None:
    sim = HubSpotSimulator(records=5)
    query = where("lastmodifieddate", "GTE", "0")
    async with client(sim) as c:
        before = (await search(c, query)).json()
        sim.inject(expire_tokens=True)
        after = await search(c, query)
    assert after.status_code == 200 and after.json() == before
