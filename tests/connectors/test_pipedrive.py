"""The Pipedrive connector (YAML plus hooks) and its simulator: v2 cursor listing, the `updated_since` +
`/v1/recents` incremental pull, rate limits, soft deletes and webhooks (HTTP Basic, v1 and v2 payloads)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import pytest

from connectors import registry
from connectors.base import Connector
from connectors.errors import AuthError, RetryableError, SinceExpired, WebhookRejected
from connectors.incremental import change_pages, pull_changes
from connectors.pipedrive.hooks import SinceToken, classify_error, parse_webhook, retry_after, verify_webhook
from connectors.pipedrive.simulator import CUSTOM_FIELD, DEFAULT_TOKEN, PipedriveSimulator
from connectors.spec import RateLimit, RetryPolicy
from connectors.webhooks import WebhookEvent, WebhookRequest
from mappings.engine import compile_mapping
from mappings.pipeline import RecordMapper

BASE = "https://acme.pipedrive.com"
FAST = RetryPolicy(attempts=3, backoff_seconds=0, max_backoff_seconds=0)
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def open_pipedrive(sim: PipedriveSimulator | None = None, handler: Any = None) -> Connector:
    transport = httpx.ASGITransport(app=sim.app) if sim else httpx.MockTransport(handler)
    parameters, credentials = PipedriveSimulator(0).connection(BASE)
    return registry.open_connector(
        "pipedrive", parameters=parameters, credentials=credentials, transport=transport, retry=FAST
    )


def client(sim: PipedriveSimulator, **headers: str) -> httpx.AsyncClient:
    auth = headers or {"x-api-token": DEFAULT_TOKEN}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=auth)


async def ids_of(connector: Connector) -> list[str]:
    return [connector.record_id("persons", r) async for page in connector.pages("persons") for r in page.records]


# -- simulator: wire format -----------------------------------------------------------------------


async def test_v2_pages_by_an_opaque_cursor_and_ends_with_a_null_next_cursor() -> None:
    async with client(PipedriveSimulator(501)) as http:
        first = (await http.get("/api/v2/persons", params={"limit": 500})).json()
        cursor = first["additional_data"]["next_cursor"]
        last = (await http.get("/api/v2/persons", params={"limit": 500, "cursor": cursor})).json()
    assert len(first["data"]) == 500 and orjson.loads(base64.urlsafe_b64decode(cursor + "=")) == {
        "field": "id",
        "id": 501,
    }
    assert [p["id"] for p in last["data"]] == [501] and last["additional_data"] == {"next_cursor": None}


async def test_v2_person_has_rfc3339_times_plain_ids_and_nested_custom_fields() -> None:
    async with client(PipedriveSimulator(1)) as http:
        person = (await http.get("/api/v2/persons/1")).json()["data"]
    assert person["update_time"].endswith("Z") and "T" in person["update_time"]
    assert isinstance(person["owner_id"], int) and person["is_deleted"] is False and person["visible_to"] == 3
    assert person["emails"][0]["primary"] is True and CUSTOM_FIELD in person["custom_fields"]


async def test_v2_limit_over_500_is_a_400_envelope() -> None:
    async with client(PipedriveSimulator(3)) as http:
        response = await http.get("/api/v2/persons", params={"limit": 501})
    assert response.status_code == 400 and response.json()["success"] is False
    assert "500" in response.json()["error"] and response.json()["data"] is None


async def test_v1_pages_by_offset_caps_the_limit_and_uses_v1_shapes() -> None:
    async with client(PipedriveSimulator(600)) as http:
        first = (await http.get("/api/v1/persons", params={"start": 0, "limit": 1000})).json()
        last = (await http.get("/v1/persons", params={"start": 500, "limit": 500})).json()
    assert first["additional_data"]["pagination"] == {
        "start": 0,
        "limit": 500,
        "more_items_in_collection": True,
        "next_start": 500,
    }
    assert len(last["data"]) == 100 and "next_start" not in last["additional_data"]["pagination"]
    person = first["data"][0]
    assert person["owner_id"]["value"] == 18 and person["active_flag"] is True and "T" not in person["update_time"]


async def test_an_empty_v1_list_has_null_data_and_an_empty_v2_list_an_empty_one() -> None:
    async with client(PipedriveSimulator(0)) as http:
        v1 = (await http.get("/api/v1/persons")).json()
        v2 = (await http.get("/api/v2/persons")).json()
    assert v1["data"] is None and v1["additional_data"]["pagination"]["more_items_in_collection"] is False
    assert v2["data"] == [] and v2["additional_data"]["next_cursor"] is None


async def test_a_soft_deleted_person_is_404_on_v2_and_inactive_on_v1() -> None:
    sim = PipedriveSimulator(3)
    sim.delete(["2"])
    async with client(sim) as http:
        v2 = await http.get("/api/v2/persons/2")
        v1 = await http.get("/api/v1/persons/2")
        listed = (await http.get("/api/v2/persons")).json()["data"]
    assert v2.status_code == 404 and v2.json() == {
        "success": False,
        "error": "Person not found",
        "errorCode": 404,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }
    assert v1.json()["data"]["active_flag"] is False and [p["id"] for p in listed] == [1, 3]


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"x-api-token": DEFAULT_TOKEN}, {}),
        ({"authorization": f"Bearer {DEFAULT_TOKEN}"}, {}),
        ({"x-other": "1"}, {"api_token": DEFAULT_TOKEN}),
    ],
)
async def test_the_token_header_a_bearer_token_or_the_older_query_token_are_accepted(
    headers: dict[str, str], params: dict[str, str]
) -> None:
    async with client(PipedriveSimulator(1), **headers) as http:
        response = await http.get("/api/v2/persons", params=params)
    assert response.status_code == 200


async def test_a_wrong_token_gets_the_401_envelope() -> None:
    async with client(PipedriveSimulator(1), **{"x-api-token": "0" * 40}) as http:
        response = await http.get("/api/v2/persons")
    assert response.status_code == 401 and response.json()["error"] == "unauthorized access"
    assert response.json()["success"] is False and response.json()["errorCode"] == 401


async def test_an_injected_429_has_the_envelope_ratelimit_headers_and_retry_after() -> None:
    sim = PipedriveSimulator(1)
    sim.inject(status_429=1, retry_after=3)
    async with client(sim) as http:
        response = await http.get("/api/v2/persons")
    assert response.status_code == 429 and response.json()["error"] == "Request over limit"
    assert response.headers["Retry-After"] == "3" and response.headers["x-ratelimit-limit"] == "20"
    assert {"x-ratelimit-remaining", "x-ratelimit-reset", "date"} <= set(response.headers)


async def test_the_burst_window_answers_429_and_ignoring_429s_gets_cloudflares_403_page() -> None:
    sim = PipedriveSimulator(1, burst_limit=1, abuse_after=1)
    async with client(sim) as http:
        statuses = [(await http.get("/api/v2/persons")).status_code for _ in range(3)]
        blocked = await http.get("/api/v2/persons")
    assert statuses == [200, 429, 403] and blocked.headers["content-type"].startswith("text/html")


async def test_the_daily_token_budget_runs_out_with_a_429() -> None:
    sim = PipedriveSimulator(1, daily_tokens=15)
    async with client(sim) as http:
        listed, refused = await http.get("/api/v2/persons"), await http.get("/api/v2/persons")
    assert listed.status_code == 200 and refused.status_code == 429
    assert "Daily" in refused.json()["error"] and int(refused.headers["Retry-After"]) > 0


async def test_500_and_malformed_faults() -> None:
    sim = PipedriveSimulator(1)
    sim.inject(status_500=1, malformed=1)
    async with client(sim) as http:
        failed, cut = await http.get("/api/v2/persons"), await http.get("/api/v2/persons")
    assert failed.status_code == 500 and failed.json()["success"] is False
    assert cut.status_code == 200 and cut.content.startswith(b'{"success":true') and not cut.content.endswith(b"}")


async def test_updated_since_is_inclusive_and_updated_until_exclusive() -> None:
    sim = PipedriveSimulator(30)
    async with client(sim) as http:
        everything = (await http.get("/api/v2/persons", params={"sort_by": "update_time", "limit": 500})).json()
        middle = everything["data"][10]["update_time"]
        since = (await http.get("/api/v2/persons", params={"updated_since": middle, "limit": 500})).json()
        until = (await http.get("/api/v2/persons", params={"updated_until": middle, "limit": 500})).json()
    assert middle in [p["update_time"] for p in since["data"]] and middle not in [
        p["update_time"] for p in until["data"]
    ]
    assert len(since["data"]) + len(until["data"]) == 30


async def test_a_cursor_of_another_sort_is_refused() -> None:
    async with client(PipedriveSimulator(5)) as http:
        first = (await http.get("/api/v2/persons", params={"limit": 2})).json()
        params = {"limit": 2, "sort_by": "update_time", "cursor": first["additional_data"]["next_cursor"]}
        response = await http.get("/api/v2/persons", params=params)
    assert response.status_code == 400 and "sort_by" in response.json()["error"]


async def test_recents_lists_changes_with_deletions_as_inactive_v1_persons() -> None:
    sim = PipedriveSimulator(5)
    async with client(sim) as http:
        since = server_time((await http.get("/api/v2/persons")).headers["date"]).strftime("%Y-%m-%d %H:%M:%S")
        sim.update(["1"]), sim.delete(["2"])
        body = (await http.get("/api/v1/recents", params={"since_timestamp": since, "items": "person"})).json()
    assert [(i["item"], i["id"], i["data"]["active_flag"]) for i in body["data"]] == [
        ("person", 1, True),
        ("person", 2, False),
    ]
    assert body["additional_data"]["last_timestamp_on_page"] == body["data"][-1]["data"]["update_time"]


def server_time(date_header: str) -> datetime:
    return parsedate_to_datetime(date_header)


async def test_expire_tokens_makes_31_days_pass_and_purges_earlier_deletions() -> None:
    sim = PipedriveSimulator(3)
    sim.delete(["1"])
    async with client(sim) as http:
        kept = await http.get("/api/v1/persons/1")
        sim.inject(expire_tokens=True)
        purged = await http.get("/api/v1/persons/1")
    jump = server_time(purged.headers["date"]) - server_time(kept.headers["date"])
    assert kept.status_code == 200 and purged.status_code == 404 and jump >= timedelta(days=31)


# -- the connector --------------------------------------------------------------------------------


async def test_lists_every_person_in_pages_of_500() -> None:
    sim = PipedriveSimulator(1001)
    async with open_pipedrive(sim) as pipedrive:
        pages = [page async for page in pipedrive.pages("persons")]
    assert [len(p.records) for p in pages] == [500, 500, 1] and sim.stats()["v2_list"] == 3
    assert "limit=500" in pages[0].url and "x-api-token" not in pages[0].url


async def test_get_returns_the_v2_person_and_none_once_deleted() -> None:
    sim = PipedriveSimulator(5)
    async with open_pipedrive(sim) as pipedrive:
        found = await pipedrive.get("persons", "3")
        sim.delete(["3"])
        gone = await pipedrive.get("persons", "3")
    assert found is not None and found["id"] == 3 and gone is None


async def test_deletions_come_from_recents_as_deleted_changes() -> None:
    sim = PipedriveSimulator(20)
    async with open_pipedrive(sim) as pipedrive:
        first = await pull_changes(pipedrive, "persons")
        sim.delete(["4", "9"])
        later = await pull_changes(pipedrive, "persons", first.since)
    assert sorted((c.kind, c.external_id) for c in later.changes) == [("deleted", "4"), ("deleted", "9")]
    assert sim.stats()["recents"] == 1


async def test_a_pull_without_changes_reports_nothing_although_updated_since_is_inclusive() -> None:
    sim = PipedriveSimulator(20)
    async with open_pipedrive(sim) as pipedrive:
        first = await pull_changes(pipedrive, "persons")
        second = await pull_changes(pipedrive, "persons", first.since)
    assert second.changes == [] and second.since is not None
    assert SinceToken.parse(second.since).updated_since == SinceToken.parse(first.since or "").updated_since


def one_second_api(pages: list[list[dict[str, Any]]]) -> Any:
    """A v2 feed whose every record changed in the same second; each pull gets the next list."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/recents":
            return httpx.Response(200, json={"success": True, "data": None, "additional_data": {}})
        return httpx.Response(200, json={"success": True, "data": pages.pop(0), "additional_data": {}})

    return handler


async def test_a_record_changed_again_within_the_watermark_second_is_reported() -> None:
    same = "2024-05-01T12:00:03Z"
    a, b = {"id": 1, "update_time": same, "name": "Ada"}, {"id": 2, "update_time": same, "name": "Alan"}
    api = one_second_api([[a], [a, b], [{**a, "name": "Ada L."}, b]])
    async with open_pipedrive(handler=api) as pipedrive:
        first = await pull_changes(pipedrive, "persons")
        second = await pull_changes(pipedrive, "persons", first.since)
        third = await pull_changes(pipedrive, "persons", second.since)
    assert [c.external_id for c in second.changes] == ["2"] and [c.external_id for c in third.changes] == ["1"]


async def test_a_token_older_than_the_deletion_retention_raises_since_expired() -> None:
    sim = PipedriveSimulator(10)
    async with open_pipedrive(sim) as pipedrive:
        since = (await pull_changes(pipedrive, "persons")).since
        sim.inject(expire_tokens=True)
        with pytest.raises(SinceExpired, match="30 days"):
            [page async for page in change_pages(pipedrive, "persons", since)]
        resynced = await pull_changes(pipedrive, "persons", since)
        after = await pull_changes(pipedrive, "persons", resynced.since)
    assert resynced.resynced and len(resynced.changes) == 10 and not after.resynced and after.changes == []


async def test_the_latest_date_header_is_the_servers_clock() -> None:
    dates = [("date", "Wed, 01 May 2024 12:00:00 GMT"), ("date", "Mon, 03 Jun 2024 12:00:00 GMT")]

    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=dates, json={"success": True, "data": [], "additional_data": {}})

    async with open_pipedrive(handler=api) as pipedrive:
        with pytest.raises(SinceExpired):
            [page async for page in change_pages(pipedrive, "persons", "2024-05-01T12:00:00Z")]


@pytest.mark.parametrize("since", ["not a token", "updated_since=2024-05-01T00:00:00Z"])
async def test_an_unreadable_token_falls_back_to_a_full_resync(since: str) -> None:
    sim = PipedriveSimulator(4)
    async with open_pipedrive(sim) as pipedrive:
        result = await pull_changes(pipedrive, "persons", since)
    assert result.resynced and len(result.changes) == 4


def test_a_bare_rfc3339_time_is_a_token_and_tokens_round_trip() -> None:
    bare = SinceToken.parse("2024-05-01T12:00:03Z")
    token = SinceToken(bare.updated_since, bare.deleted_since, bare.checked_at, frozenset({"0a1b2c3d4e"}))
    assert bare.updated_since == bare.checked_at and SinceToken.parse(token.dump()) == token
    assert token.dump().startswith("updated_since=2024-05-01T12:00:03Z&")


async def test_the_v2_feed_asks_for_update_time_order_from_the_watermark() -> None:
    sim = PipedriveSimulator(3)
    seen: list[httpx.URL] = []

    async def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return await httpx.ASGITransport(app=sim.app).handle_async_request(request)

    async with open_pipedrive(handler=spy) as pipedrive:
        first = await pull_changes(pipedrive, "persons")
        await pull_changes(pipedrive, "persons", first.since)
    assert seen[0].params["sort_by"] == "update_time" and seen[0].params["limit"] == "500"
    assert f"updated_since={seen[1].params['updated_since']}&" in (first.since or "")
    assert seen[2].path == "/api/v1/recents" and " " in seen[2].params["since_timestamp"]


# -- rate limits and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "wait"), [({"Retry-After": "7"}, 7.0), ({"x-ratelimit-reset": "1"}, 1.0), ({}, 2.0)]
)
def test_retry_after_reads_retry_after_then_the_ratelimit_reset_then_waits_one_window(
    headers: dict[str, str], wait: float
) -> None:
    assert retry_after(httpx.Response(429, headers=headers)) == wait


async def test_a_429_without_retry_after_waits_for_the_burst_window(waits: list[float]) -> None:
    answers = [httpx.Response(429, headers={"x-ratelimit-reset": "1"}, json={"success": False})]

    def api(request: httpx.Request) -> httpx.Response:
        return answers.pop() if answers else httpx.Response(200, json={"success": True, "data": []})

    async with open_pipedrive(handler=api) as pipedrive:
        assert await ids_of(pipedrive) == []
    assert waits == [1.0]


async def test_the_simulators_429s_are_waited_out(waits: list[float]) -> None:
    sim = PipedriveSimulator(3)
    sim.inject(status_429=2, retry_after=0.5)
    async with open_pipedrive(sim) as pipedrive:
        assert await ids_of(pipedrive) == ["1", "2", "3"]
    assert waits == [0.5, 0.5]


def test_cloudflares_403_html_page_is_retryable_but_a_json_403_is_not() -> None:
    html = httpx.Response(403, headers={"content-type": "text/html"}, content=b"<html>blocked</html>")
    error = classify_error(html)
    assert isinstance(error, RetryableError) and error.retry_after == 60.0
    assert classify_error(httpx.Response(403, json={"success": False, "error": "forbidden"})) is None


async def test_a_closed_account_is_an_auth_error() -> None:
    sim = PipedriveSimulator(3)
    sim.account_open = False
    async with open_pipedrive(sim) as pipedrive:
        with pytest.raises(AuthError, match="not open"):
            await ids_of(pipedrive)


def test_the_request_budget_is_under_the_lowest_burst_limit() -> None:
    spec, _ = registry.load("pipedrive")
    assert spec.rate_limit == RateLimit(requests=18, per_seconds=2)
    assert open_pipedrive(PipedriveSimulator(0)).budget is not None


UDM = ("id", "email", "first_name", "last_name", "full_name", "phone", "title", "active", "updated_at")


async def test_udm_fields_map_a_v2_person() -> None:
    async with open_pipedrive(PipedriveSimulator(4)) as pipedrive:
        person = await pipedrive.get("persons", "4")
    passthrough = compile_mapping({field: "{{ " + field + " }}" for field in UDM}, origin="test")
    udm_fields = registry.load("pipedrive")[0].collections["persons"].udm_fields
    user = RecordMapper(data_source="users", udm_fields=udm_fields, app_mapping=passthrough, origin="test").map(
        person or {}
    )
    assert person and user["id"] == "4" and user["email"] == person["emails"][0]["value"] and user["active"] is True
    assert user["phone"] == (person["phones"][0]["value"] if person["phones"] else None)
    assert user["title"] == person["job_title"] and user["full_name"] == person["name"]


# -- webhooks -------------------------------------------------------------------------------------

SECRET = "inlet:s3cret"


def delivery(body: bytes, authorization: str | None) -> WebhookRequest:
    headers = httpx.Headers({"authorization": authorization} if authorization else {})
    return WebhookRequest("POST", "https://inlet.example/webhooks/pipedrive", headers, body)


def test_webhook_basic_credentials_are_accepted() -> None:
    request = PipedriveSimulator(2).webhook("1", "change", auth=("inlet", "s3cret"))
    verify_webhook(request, SECRET, 0.0)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"inlet:wrong").decode(),
        "Basic " + base64.b64encode(b"other:s3cret").decode(),
        "Bearer " + base64.b64encode(SECRET.encode()).decode(),
        "Basic not*base64",
        "Basic ",
    ],
)
def test_webhooks_without_the_right_basic_credentials_are_rejected(authorization: str | None) -> None:
    with pytest.raises(WebhookRejected):
        verify_webhook(delivery(b"{}", authorization), SECRET, 0.0)


SPEC_V2: dict[str, Any] = {
    "meta": {
        "action": "change",
        "entity": "person",
        "entity_id": "1",
        "id": "7d1c5b0e-2f3a-4b5c-9d8e-1f2a3b4c5d6e",
        "timestamp": "2024-05-01T12:00:03.512Z",
        "version": "2.0",
        "attempt": 1,
    },
    "data": {"id": 1, "name": "Ada Lovelace"},
    "previous": {"emails": []},
}
SPEC_V1: dict[str, Any] = {
    "v": 1,
    "meta": {
        "v": 1,
        "action": "updated",
        "object": "person",
        "id": 1,
        "timestamp": 1714564803,
        "timestamp_micro": 1714564803512000,
        "webhook_id": 4321,
    },
    "retry": 0,
    "current": {"id": 1},
    "previous": {"id": 1},
    "event": "updated.person",
}


def test_the_specs_v2_and_v1_payloads_parse_to_the_same_upsert() -> None:
    v2 = parse_webhook(delivery(orjson.dumps(SPEC_V2), None))
    v1 = parse_webhook(delivery(orjson.dumps(SPEC_V1), None))
    assert v2 == [WebhookEvent("upsert", "1", "2024-05-01T12:00:03.512Z", "7d1c5b0e-2f3a-4b5c-9d8e-1f2a3b4c5d6e")]
    assert [(e.kind, e.external_id, e.occurred_at) for e in v1] == [("upsert", "1", "2024-05-01T12:00:03.512Z")]


def test_a_v1_retry_keeps_the_event_id() -> None:
    retried = {**SPEC_V1, "retry": 2}
    first, again = (parse_webhook(delivery(orjson.dumps(body), None))[0] for body in (SPEC_V1, retried))
    assert first.event_id == again.event_id is not None


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize(("action", "kind"), [("create", "upsert"), ("change", "upsert"), ("delete", "deleted")])
def test_simulated_deliveries_parse_in_both_versions(version: Any, action: Any, kind: str) -> None:
    sim = PipedriveSimulator(3)
    [event] = parse_webhook(sim.webhook("2", action, version=version))
    assert (event.kind, event.external_id) == (kind, "2") and event.occurred_at and event.event_id


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        orjson.dumps({**SPEC_V2, "meta": {**SPEC_V2["meta"], "entity": "deal"}}),
        orjson.dumps({**SPEC_V1, "meta": {**SPEC_V1["meta"], "object": "organization"}}),
        b"[]",
    ],
)
def test_other_objects_and_unreadable_bodies_announce_no_person_change(body: bytes) -> None:
    assert parse_webhook(delivery(body, None)) == []
