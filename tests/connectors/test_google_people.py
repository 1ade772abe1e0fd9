"""The Google People connector (YAML plus hooks) and its simulator, against api-specs/google-people.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from connectors.base import Connector
from connectors.errors import AuthError, RequestRejected
from connectors.google_people.hooks import retry_after
from connectors.google_people.simulator import GooglePeopleSimulator
from connectors.incremental import pull_changes
from connectors.registry import load, open_connector
from connectors.spec import RetryPolicy
from mappings.engine import compile_mapping
from mappings.errors import RecordError

FIELDS = "names,emailAddresses,phoneNumbers,organizations,metadata"
Served = tuple[GooglePeopleSimulator, httpx.AsyncClient]
FAST_RETRY = RetryPolicy(attempts=4, backoff_seconds=0, max_backoff_seconds=0, max_wait_seconds=30)


def simulator(records: int = 5, **options: Any) -> GooglePeopleSimulator:
    return GooglePeopleSimulator(records, seed=3, **options)


def connect(sim: GooglePeopleSimulator) -> Connector:
    parameters, credentials = sim.connection("https://people.googleapis.com")
    transport = httpx.ASGITransport(app=sim.app)
    return open_connector(
        "google_people", parameters=parameters, credentials=credentials, transport=transport, retry=FAST_RETRY
    )


def client_for(sim: GooglePeopleSimulator) -> httpx.AsyncClient:
    """A plain client of the simulator's API, holding its token."""
    headers = {"Authorization": f"Bearer {sim.token}"}
    transport = httpx.ASGITransport(app=sim.app)
    return httpx.AsyncClient(base_url="https://people.googleapis.com/v1/", headers=headers, transport=transport)


@pytest.fixture
async def http() -> AsyncIterator[Served]:
    """A simulator of 200 contacts and a client of it."""
    sim = simulator(200)
    async with client_for(sim) as client:
        yield sim, client


async def connections(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("people/me/connections", params={"personFields": FIELDS, **params})


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# -- the simulator, as the API behaves ------------------------------------------------------------


async def test_pages_follow_next_page_token_and_the_last_page_has_none(http: Served) -> None:
    _, client = http
    first = (await connections(client, pageSize="150")).json()
    last = (await connections(client, pageSize="150", pageToken=first["nextPageToken"])).json()
    assert len(first["connections"]) == 150 and first["totalItems"] == 200
    assert len(last["connections"]) == 50 and "nextPageToken" not in last and "nextSyncToken" not in last


@pytest.mark.parametrize(("size", "served"), [(None, 100), ("0", 100), ("1000", 200)])
async def test_page_size_defaults_to_100(http: Served, size: str | None, served: int) -> None:
    _, client = http
    body = (await connections(client, **({"pageSize": size} if size else {}))).json()
    assert len(body["connections"]) == served


async def test_a_page_size_over_1000_is_invalid_unless_clamped() -> None:
    for sim, status in ((simulator(3), 400), (simulator(3, clamp_page_size=True), 200)):
        async with client_for(sim) as client:
            assert (await connections(client, pageSize="1001")).status_code == status


async def test_person_fields_is_required(http: Served) -> None:
    _, client = http
    response = await client.get("people/me/connections")
    assert response.status_code == 400 and error_of(response)["status"] == "INVALID_ARGUMENT"
    assert error_of(response)["message"].startswith("personFields mask is required.")


async def test_an_empty_account_omits_connections() -> None:
    async with client_for(simulator(0)) as client:
        response = await connections(client)
    assert response.status_code == 200 and response.json() == {}


async def test_next_sync_token_comes_only_on_the_last_page_of_a_sync_listing(http: Served) -> None:
    _, client = http
    first = (await connections(client, pageSize="150", requestSyncToken="true")).json()
    last = (await connections(client, pageSize="150", requestSyncToken="true", pageToken=first["nextPageToken"])).json()
    assert "nextSyncToken" not in first and last["nextSyncToken"]


async def test_a_page_token_with_other_parameters_is_a_400(http: Served) -> None:
    _, client = http
    token = (await connections(client, pageSize="150")).json()["nextPageToken"]
    response = await connections(client, pageSize="100", pageToken=token)
    assert response.status_code == 400 and error_of(response)["status"] == "INVALID_ARGUMENT"


async def test_a_sync_token_returns_changed_people_and_trimmed_deleted_ones(http: Served) -> None:
    sim, client = http
    token = (await connections(client, pageSize="1000", requestSyncToken="true")).json()["nextSyncToken"]
    updated = sim.update(2)
    deleted = sim.delete([i for i in sim.ids() if i not in updated][:1])
    body = (await connections(client, pageSize="1000", requestSyncToken="true", syncToken=token)).json()
    assert [p["resourceName"] for p in body["connections"]] == updated + deleted
    assert body["connections"][-1] == {
        "resourceName": deleted[0],
        "etag": body["connections"][-1]["etag"],
        "metadata": {"deleted": True, "objectType": "PERSON"},
    }
    assert body["nextSyncToken"] != token


async def test_a_sync_with_nothing_new_omits_connections(http: Served) -> None:
    _, client = http
    token = (await connections(client, pageSize="1000", requestSyncToken="true")).json()["nextSyncToken"]
    body = (await connections(client, pageSize="1000", requestSyncToken="true", syncToken=token)).json()
    assert set(body) == {"nextSyncToken"}


async def test_a_sync_token_needs_the_parameters_that_got_it(http: Served) -> None:
    _, client = http
    token = (await connections(client, pageSize="1000", requestSyncToken="true")).json()["nextSyncToken"]
    response = await connections(client, pageSize="500", requestSyncToken="true", syncToken=token)
    assert response.status_code == 400 and error_of(response)["status"] == "INVALID_ARGUMENT"


async def test_expired_sync_tokens_are_a_400_with_the_reason_and_later_ones_work(http: Served) -> None:
    sim, client = http
    old = (await connections(client, requestSyncToken="true", pageSize="1000")).json()["nextSyncToken"]
    sim.inject(expire_tokens=True)
    new = (await connections(client, requestSyncToken="true", pageSize="1000")).json()["nextSyncToken"]
    refused = await connections(client, requestSyncToken="true", pageSize="1000", syncToken=old)
    assert refused.status_code == 400 and error_of(refused)["details"][0]["reason"] == "EXPIRED_SYNC_TOKEN"
    assert error_of(refused)["message"].startswith("Sync token is expired.")
    assert (await connections(client, requestSyncToken="true", pageSize="1000", syncToken=new)).status_code == 200


@pytest.mark.parametrize("status", [400, 410])
async def test_a_sync_token_past_its_lifetime_expires(status: int) -> None:
    async with client_for(simulator(3, sync_token_ttl_seconds=0, expired_status=status)) as client:
        token = (await connections(client, requestSyncToken="true")).json()["nextSyncToken"]
        response = await connections(client, requestSyncToken="true", syncToken=token)
    assert response.status_code == status and "Sync token is expired" in response.text


async def test_deleted_people_are_not_listed_and_not_found(http: Served) -> None:
    sim, client = http
    gone = sim.delete(1)[0]
    listed = [p["resourceName"] for p in (await connections(client, pageSize="1000")).json()["connections"]]
    response = await client.get(gone, params={"personFields": "names"})
    assert gone not in listed and len(listed) == 199
    assert response.status_code == 404 and error_of(response) == {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
    }


async def test_a_resource_name_with_an_encoded_slash_is_googles_html_404(http: Served) -> None:
    sim, client = http
    name = sim.ids()[0]
    literal = await client.get(name, params={"personFields": "names"})
    encoded = await client.get(name.replace("/", "%2F"), params={"personFields": "names"})
    assert literal.status_code == 200 and literal.json()["resourceName"] == name
    assert encoded.status_code == 404 and "That’s an error." in encoded.text


async def test_batch_get_answers_one_response_per_resource_name(http: Served) -> None:
    sim, client = http
    names = [sim.ids()[0], "people/c1"]
    url = "https://people.googleapis.com/v1/people:batchGet"  # absolute: "people:" would read as a scheme
    body = (await client.get(url, params={"personFields": "names", "resourceNames": names})).json()
    assert [r["httpStatusCode"] for r in body["responses"]] == [200, 404]
    assert body["responses"][0]["person"]["resourceName"] == names[0]


async def test_field_items_have_one_primary_in_no_fixed_place(http: Served) -> None:
    _, client = http
    people = (await connections(client, pageSize="1000")).json()["connections"]
    emails = [p["emailAddresses"] for p in people]
    assert all(sum(bool(e["metadata"].get("primary")) for e in items) == 1 for items in emails)
    assert any(not items[0]["metadata"].get("primary") for items in emails)
    assert any("phoneNumbers" not in p for p in people)  # empty arrays are left out


async def test_sort_orders_and_their_limits(http: Served) -> None:
    _, client = http
    people = (await connections(client, pageSize="1000", sortOrder="FIRST_NAME_ASCENDING")).json()["connections"]
    firsts = [p["names"][0]["givenName"] for p in people]
    token = (await connections(client, requestSyncToken="true", pageSize="1000")).json()["nextSyncToken"]
    assert firsts == sorted(firsts)
    assert (await connections(client, sortOrder="FIRST_NAME_ASCENDING", syncToken=token)).status_code == 400


async def test_recent_changes_reach_sync_responses_after_the_delay() -> None:
    sim = simulator(3, sync_delay_seconds=3600)
    async with client_for(sim) as client:
        token = (await connections(client, requestSyncToken="true")).json()["nextSyncToken"]
        sim.create(1)
        body = (await connections(client, requestSyncToken="true", syncToken=token)).json()
    assert "connections" not in body and body["nextSyncToken"]


async def test_refused_and_missing_credentials_are_401_unauthenticated(http: Served) -> None:
    _, client = http
    wrong = await client.get("people/me/connections", headers={"Authorization": "Bearer ya29.wrong"})
    missing = await client.get("people/me/connections", headers={"Authorization": ""})
    assert wrong.status_code == 401 and error_of(wrong)["status"] == "UNAUTHENTICATED"
    assert "www-authenticate" in wrong.headers and error_of(missing)["message"].startswith("Request")


async def test_the_429_fault_is_resource_exhausted_without_retry_after(http: Served) -> None:
    sim, client = http
    sim.inject(status_429=1)
    response = await connections(client)
    assert response.status_code == 429 and "retry-after" not in response.headers
    assert error_of(response)["status"] == "RESOURCE_EXHAUSTED"
    assert "per minute per user" in error_of(response)["message"]


async def test_the_read_quota_per_minute_is_enforced() -> None:
    async with client_for(simulator(3, read_quota_per_minute=2)) as client:
        statuses = [(await connections(client)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_first_pages_of_full_syncs_have_their_own_quota() -> None:
    async with client_for(simulator(3, full_sync_quota_per_minute=1)) as client:
        first, second = [await connections(client, requestSyncToken="true") for _ in range(2)]
        plain = await connections(client)
    assert first.status_code == 200 and plain.status_code == 200
    assert second.status_code == 429 and "'Full sync requests per minute per user'" in error_of(second)["message"]


async def test_500_and_malformed_faults(http: Served) -> None:
    sim, client = http
    sim.inject(status_500=1, malformed=1)
    failed, truncated = await connections(client), await connections(client)
    assert failed.status_code == 500 and error_of(failed) == {
        "code": 500,
        "message": "Internal error encountered.",
        "status": "INTERNAL",
    }
    with pytest.raises(ValueError):
        orjson.loads(truncated.content)


async def test_a_repeated_page_token_is_handed_out_again(http: Served) -> None:
    sim, client = http
    token = (await connections(client, pageSize="50")).json()["nextPageToken"]
    sim.inject(repeat_token=1)
    assert (await connections(client, pageSize="50", pageToken=token)).json()["nextPageToken"] == token


# -- the connector ----------------------------------------------------------------------------


async def test_lists_in_pages_of_1000_until_no_next_page_token() -> None:
    sim = simulator(2500)
    async with connect(sim) as connector:
        pages = [page async for page in connector.pages("contacts")]
    assert [len(p.records) for p in pages] == [1000, 1000, 500] and sim.stats()["list"] == 3


async def test_a_pull_with_nothing_new_is_empty_not_malformed() -> None:
    sim = simulator(5)
    async with connect(sim) as connector:
        first = await pull_changes(connector, "contacts")
        later = await pull_changes(connector, "contacts", first.since)
    assert len(first.changes) == 5 and later.changes == [] and later.since and not later.resynced


async def test_deletions_come_as_deleted_changes() -> None:
    sim = simulator(5)
    async with connect(sim) as connector:
        first = await pull_changes(connector, "contacts")
        deleted = sim.delete(2)
        later = await pull_changes(connector, "contacts", first.since)
    assert [(c.kind, c.external_id, c.record) for c in later.changes] == [("deleted", d, None) for d in deleted]


async def test_the_older_410_expiry_also_resyncs() -> None:
    sim = simulator(4, expired_status=410)
    async with connect(sim) as connector:
        since = (await pull_changes(connector, "contacts")).since
        sim.inject(expire_tokens=True)
        result = await pull_changes(connector, "contacts", since)
    assert result.resynced and len(result.changes) == 4


async def test_a_400_other_than_expiry_is_rejected_not_resynced() -> None:
    async with connect(simulator(3)) as connector:
        with pytest.raises(RequestRejected):
            await pull_changes(connector, "contacts", "not-a-sync-token")


async def test_refused_credentials_are_an_auth_error() -> None:
    sim = simulator(3)
    parameters, _ = sim.connection("https://people.googleapis.com")
    connector = open_connector(
        "google_people",
        parameters=parameters,
        credentials=sim.bad_credentials(),
        transport=httpx.ASGITransport(app=sim.app),
    )
    async with connector:
        with pytest.raises(AuthError):
            await anext(connector.pages("contacts"))


async def test_a_429_with_retry_info_waits_the_delay_it_names(waits: list[float]) -> None:
    sim = simulator(3, retry_info=True)
    sim.inject(status_429=1, retry_after=2.5)
    async with connect(sim) as connector:
        pages = [page async for page in connector.pages("contacts")]
    assert waits == [2.5] and len(pages[0].records) == 3


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "7"}, {}, None),  # the runtime reads the header itself
        (
            {},
            {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}},
            1.5,
        ),
        ({}, {"error": {"status": "RESOURCE_EXHAUSTED", "details": []}}, None),
        ({}, "not json", None),
    ],
)
def test_retry_after_reads_retry_info_from_the_body(headers: dict[str, str], body: Any, expected: float | None) -> None:
    content = body.encode() if isinstance(body, str) else orjson.dumps(body)
    assert retry_after(httpx.Response(429, headers=headers, content=content)) == expected


def test_the_request_budget_stays_under_90_reads_per_minute() -> None:
    limit = load("google_people")[0].rate_limit
    assert limit is not None and limit.requests < 90 and limit.per_seconds == 60


async def test_udm_fields_take_the_primary_items() -> None:
    sim = simulator(8)
    async with connect(sim) as connector:
        people = [r for page in [p async for p in connector.pages("contacts")] for r in page.records]
    udm = compile_mapping(load("google_people")[0].collections["contacts"].udm_fields, origin="test")
    person = next(p for p in people if not p["emailAddresses"][0]["metadata"].get("primary"))
    fields = udm.render({"raw": person})
    assert fields["email"] == person["emailAddresses"][1]["value"] and fields["active"] is True
    assert fields["id"] == person["resourceName"] and fields["company"] == person["organizations"][0]["name"]
    assert fields["updated_at"] == person["metadata"]["sources"][0]["updateTime"]


def test_udm_fields_of_a_deleted_stub_are_empty_and_inactive() -> None:
    udm = compile_mapping(load("google_people")[0].collections["contacts"].udm_fields, origin="test")
    fields = udm.render({"raw": {"resourceName": "people/c1", "etag": "%x", "metadata": {"deleted": True}}})
    assert fields["active"] is False and fields["email"] is None and fields["full_name"] is None


def test_an_index_path_into_an_absent_array_fails_so_udm_fields_use_default() -> None:
    udm = compile_mapping({"email": "{{ raw.emailAddresses.0.value }}"}, origin="test")
    assert udm.render({"raw": {"emailAddresses": [{"value": "a@b.c"}]}}) == {"email": "a@b.c"}
    with pytest.raises(RecordError, match="emailAddresses"):
        udm.render({"raw": {}})


# -- framework gaps (see the report): these fail until the framework can express them --------------


async def test_get_by_resource_name() -> None:
    sim = simulator(3)
    async with connect(sim) as connector:
        record = await connector.get("contacts", sim.ids()[1])
    assert record is not None and record["resourceName"] == sim.ids()[1]


async def test_an_empty_account_lists_nothing() -> None:
    async with connect(simulator(0)) as connector:
        pages = [page async for page in connector.pages("contacts")]
    assert [p.records for p in pages] == [[]]
