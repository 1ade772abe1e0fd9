"""Salesforce: the simulator against api-specs/salesforce.md, and the connector's hooks and YAML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.errors import AuthError, RetryableError
from connectors.incremental import pull_changes
from connectors.registry import load, open_connector
from connectors.salesforce.hooks import DAILY_LIMIT_WAIT, classify_error
from connectors.salesforce.simulator import DEFAULT_TOKEN, SalesforceSimulator
from connectors.spec import RetryPolicy
from mappings.engine import compile_mapping
from mappings.udm.users import User

BASE = "https://acme.my.salesforce.com"
DATA = "/services/data/v60.0"
SF_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$")
FAST = RetryPolicy(attempts=4, backoff_seconds=0, max_backoff_seconds=0, max_wait_seconds=30)


def client(sim: SalesforceSimulator, token: str = DEFAULT_TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=headers)


async def soql(c: httpx.AsyncClient, q: str, batch: int | None = None, resource: str = "query") -> httpx.Response:
    headers = {"Sforce-Query-Options": f"batchSize={batch}"} if batch else {}
    return await c.get(f"{DATA}/{resource}", params={"q": q}, headers=headers)


class Recording(httpx.AsyncBaseTransport):
    """The simulator's transport, keeping every request the connector sent."""

    def __init__(self, sim: SalesforceSimulator) -> None:
        self.inner = httpx.ASGITransport(app=sim.app)
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)


def connect(sim: SalesforceSimulator, transport: httpx.AsyncBaseTransport | None = None) -> Connector:
    parameters, credentials = sim.connection(BASE)
    return open_connector(
        "salesforce",
        parameters=parameters,
        credentials=credentials,
        transport=transport or httpx.ASGITransport(app=sim.app),
        retry=FAST,
    )


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", f"{BASE}{DATA}/query"))


# -- the simulator ---------------------------------------------------------------------------------


async def test_query_pages_by_relative_next_records_url_until_done() -> None:
    async with client(SalesforceSimulator(records=4500)) as c:
        pages = [(await soql(c, "SELECT Id FROM Contact")).json()]
        while "nextRecordsUrl" in pages[-1]:
            pages.append((await c.get(pages[-1]["nextRecordsUrl"])).json())
    assert [len(p["records"]) for p in pages] == [2000, 2000, 500]
    assert {p["totalSize"] for p in pages} == {4500} and [p["done"] for p in pages] == [False, False, True]
    assert re.fullmatch(rf"{DATA}/query/01g\w{{15}}-2000", pages[0]["nextRecordsUrl"])
    assert len({r["Id"] for p in pages for r in p["records"]}) == 4500


@pytest.mark.parametrize(("asked", "served"), [(None, 2000), (50, 200), (500, 500), (5000, 2000)])
async def test_batch_size_header_is_held_between_200_and_2000(asked: int | None, served: int) -> None:
    async with client(SalesforceSimulator(records=2500)) as c:
        body = (await soql(c, "SELECT Id FROM Contact", batch=asked)).json()
    assert len(body["records"]) == served and body["nextRecordsUrl"].endswith(f"-{served}")


async def test_records_carry_attributes_nested_relationships_nulls_and_salesforce_datetimes() -> None:
    async with client(SalesforceSimulator(records=20)) as c:
        body = (await soql(c, "SELECT Id, Phone, Account.Name, SystemModstamp FROM Contact")).json()
    first, no_account = body["records"][0], body["records"][9]
    assert first["attributes"] == {"type": "Contact", "url": f"{DATA}/sobjects/Contact/{first['Id']}"}
    assert first["Account"]["attributes"]["type"] == "Account" and first["Account"]["Name"]
    assert no_account["Account"] is None and "Phone" in no_account
    assert SF_TIME.match(first["SystemModstamp"]) and re.fullmatch(r"003RO0\w{12}", first["Id"])


async def test_ids_resolve_as_15_characters_or_18_in_any_case() -> None:
    sim = SalesforceSimulator(records=5)
    wanted = sim.ids()[3]
    async with client(sim) as c:
        found = [(await c.get(f"{DATA}/sobjects/Contact/{i}")).json()["Id"] for i in (wanted[:15], wanted.lower())]
        wrong_checksum = await c.get(f"{DATA}/sobjects/Contact/{wanted[:15]}AAA")
    assert found == [wanted, wanted] and wrong_checksum.status_code == 404


async def test_get_of_unknown_and_deleted_contacts_answers_404_error_arrays() -> None:
    sim = SalesforceSimulator(records=5)
    gone = sim.delete([sim.ids()[0]])[0]
    async with client(sim) as c:
        unknown = await c.get(f"{DATA}/sobjects/Contact/003RO0000000000AAA")
        deleted = await c.get(f"{DATA}/sobjects/Contact/{gone}")
    assert unknown.status_code == deleted.status_code == 404
    assert unknown.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    assert deleted.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


@pytest.mark.parametrize(
    ("q", "code"),
    [
        ("SELECT Id, Emial FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE SystemModstamp > '2024-05-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id FROM Contactz", "INVALID_TYPE"),
        ("SELEKT Id FROM Contact", "MALFORMED_QUERY"),
    ],
)
async def test_bad_soql_is_a_400_error_array(q: str, code: str) -> None:
    async with client(SalesforceSimulator(records=3)) as c:
        answer = await soql(c, q)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == code


async def test_system_modstamp_ties_are_ordered_by_id() -> None:
    async with client(SalesforceSimulator(records=50)) as c:
        q = "SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= 2024-04-01T00:00:00Z"
        records = (await soql(c, f"{q} ORDER BY SystemModstamp, Id")).json()["records"]
    tied = [r["Id"] for r in records if r["SystemModstamp"] == "2024-04-01T00:00:00.000+0000"]
    assert len(tied) >= 10 and tied == sorted(tied)
    assert [(r["SystemModstamp"], r["Id"]) for r in records] == sorted((r["SystemModstamp"], r["Id"]) for r in records)


async def test_deleted_contacts_leave_query_but_stay_in_query_all() -> None:
    sim = SalesforceSimulator(records=10)
    gone = sim.delete(2)
    async with client(sim) as c:
        live = (await soql(c, "SELECT Id FROM Contact")).json()
        everything = (await soql(c, "SELECT Id, IsDeleted FROM Contact", resource="queryAll")).json()
    assert live["totalSize"] == 8 and everything["totalSize"] == 10
    assert {r["Id"] for r in everything["records"] if r["IsDeleted"]} == set(gone)


async def test_users_are_deactivated_not_deleted_and_automated_users_are_filtered() -> None:
    sim = SalesforceSimulator(records=5)
    sim.delete([sim.ids()[1]])
    async with client(sim) as c:
        standard = (await soql(c, "SELECT Id, IsActive FROM User WHERE UserType = 'Standard'")).json()
        everyone = (await soql(c, "SELECT Id FROM User")).json()
        start, end = (datetime.now(UTC) + timedelta(minutes=m) for m in (-10, 1))
        params = {"start": start.isoformat(), "end": end.isoformat()}
        deleted = (await c.get(f"{DATA}/sobjects/User/deleted/", params=params)).json()
    assert [r["IsActive"] for r in standard["records"]] == [True, False, True, True, True]
    assert everyone["totalSize"] == 7 and deleted["deletedRecords"] == []


async def test_deleted_resource_lists_the_window_with_its_dates() -> None:
    sim = SalesforceSimulator(records=10)
    gone = sim.delete(3)
    start, end = (datetime.now(UTC) + timedelta(minutes=m) for m in (-10, 1))
    async with client(sim) as c:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        body = (await c.get(f"{DATA}/sobjects/Contact/deleted/", params=params)).json()
    assert sorted(r["id"] for r in body["deletedRecords"]) == sorted(gone)
    assert all(SF_TIME.match(body[k]) for k in ("earliestDateAvailable", "latestDateCovered"))


@pytest.mark.parametrize(("resource", "days"), [("deleted", 15), ("updated", 30)])
async def test_replication_windows_refuse_a_start_older_than_their_retention(resource: str, days: int) -> None:
    start, end = (datetime.now(UTC) - timedelta(days=d) for d in (days + 1, 0))
    async with client(SalesforceSimulator(records=3)) as c:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        answer = await c.get(f"{DATA}/sobjects/Contact/{resource}/", params=params)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"


async def test_expire_tokens_purges_the_delete_log_past_earlier_starts() -> None:
    sim = SalesforceSimulator(records=3)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    sim.inject(expire_tokens=True)
    async with client(sim) as c:
        params = {
            "start": (start - timedelta(minutes=5)).isoformat(),
            "end": (start + timedelta(minutes=2)).isoformat(),
        }
        body = (await c.get(f"{DATA}/sobjects/Contact/deleted/", params=params)).json()
    assert datetime.fromisoformat(body["earliestDateAvailable"]) > start


async def test_updated_resource_lists_ids_changed_in_the_window() -> None:
    sim = SalesforceSimulator(records=10)
    changed = sim.update(2) + sim.create(1)
    start, end = (datetime.now(UTC) + timedelta(minutes=m) for m in (-10, 1))
    async with client(sim) as c:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        body = (await c.get(f"{DATA}/sobjects/Contact/updated/", params=params)).json()
    assert sorted(body["ids"]) == sorted(changed) and SF_TIME.match(body["latestDateCovered"])


async def test_unknown_query_locator_is_invalid_query_locator() -> None:
    async with client(SalesforceSimulator(records=3)) as c:
        answer = await c.get(f"{DATA}/query/01gRO0000000099AAA-2000")
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


async def test_a_wrong_token_is_401_invalid_session_id() -> None:
    async with client(SalesforceSimulator(records=3), token="00Dexpired") as c:
        answer = await soql(c, "SELECT Id FROM Contact")
    assert answer.status_code == 401
    assert answer.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


async def test_throttling_is_a_403_without_retry_after_and_usage_is_in_every_answer() -> None:
    sim = SalesforceSimulator(records=3)
    sim.inject(status_429=1)
    async with client(sim) as c:
        throttled, ok = await soql(c, "SELECT Id FROM Contact"), await soql(c, "SELECT Id FROM Contact")
    assert throttled.status_code == 403 and "retry-after" not in throttled.headers
    assert throttled.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert ok.headers["Sforce-Limit-Info"] == "api-usage=2/100000"


async def test_a_spent_daily_allocation_answers_total_requests_limit_exceeded() -> None:
    sim = SalesforceSimulator(records=3, daily_limit=1)
    async with client(sim) as c:
        await soql(c, "SELECT Id FROM Contact")
        spent = await soql(c, "SELECT Id FROM Contact")
    assert spent.status_code == 403 and spent.headers["Sforce-Limit-Info"] == "api-usage=2/1"
    assert spent.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


async def test_500_and_malformed_faults() -> None:
    sim = SalesforceSimulator(records=3)
    sim.inject(status_500=1, malformed=1)
    async with client(sim) as c:
        failed, cut = await soql(c, "SELECT Id FROM Contact"), await soql(c, "SELECT Id FROM Contact")
    assert failed.status_code == 500 and failed.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert cut.status_code == 200 and cut.content.startswith(b'{"totalSize"') and not cut.content.endswith(b"}")


async def test_repeat_token_hands_out_the_link_the_page_was_asked_with() -> None:
    sim = SalesforceSimulator(records=5000)
    async with client(sim) as c:
        first = (await soql(c, "SELECT Id FROM Contact")).json()
        sim.inject(repeat_token=1)
        second = (await c.get(first["nextRecordsUrl"])).json()
    assert second["nextRecordsUrl"] == first["nextRecordsUrl"]


# -- the connector ---------------------------------------------------------------------------------


async def test_lists_everything_when_the_server_sends_smaller_batches() -> None:
    sim = SalesforceSimulator(records=1100, max_batch=500)
    async with connect(sim) as connector:
        pages = [page async for page in connector.pages("contacts")]
    assert [len(p.records) for p in pages] == [500, 500, 100]


async def test_sends_the_batch_size_header_and_the_soql() -> None:
    sim = SalesforceSimulator(records=3)
    transport = Recording(sim)
    async with connect(sim, transport) as connector:
        [page async for page in connector.pages("contacts")]
    sent = transport.sent[0]
    assert sent.headers["Sforce-Query-Options"] == "batchSize=2000" and sent.url.path == f"{DATA}/query"
    assert sent.url.params["q"].endswith("FROM Contact") and sent.headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"


async def test_pull_asks_soql_since_the_token_and_reads_deletions_from_deleted() -> None:
    sim = SalesforceSimulator(records=30)
    transport = Recording(sim)
    async with connect(sim, transport) as connector:
        since = (await pull_changes(connector, "contacts")).since
        gone, changed = sim.delete(2), sim.update(2)
        later = await pull_changes(connector, "contacts", since)
    assert since and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", since)
    assert {c.external_id for c in later.changes if c.kind == "deleted"} == set(gone)
    assert {c.external_id for c in later.changes if c.kind == "upsert"} == set(changed)
    soql_sent = [r.url.params["q"] for r in transport.sent if "q" in r.url.params][-1]
    assert "WHERE SystemModstamp >= " in soql_sent and soql_sent.endswith("ORDER BY SystemModstamp, Id")
    assert any(r.url.path == f"{DATA}/sobjects/Contact/deleted/" for r in transport.sent)


async def test_a_since_older_than_the_delete_log_resyncs() -> None:
    sim = SalesforceSimulator(records=12)
    async with connect(sim) as connector:
        result = await pull_changes(connector, "contacts", "2024-01-01T00:00:00Z")
    assert result.resynced and len(result.changes) == 12 and result.since


async def test_a_token_from_after_the_purge_still_works() -> None:
    sim = SalesforceSimulator(records=12)
    sim.inject(expire_tokens=True)
    after = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with connect(sim) as connector:
        result = await pull_changes(connector, "contacts", after)
    assert not result.resynced and result.changes == []


async def test_a_where_clause_of_the_listing_is_kept_and_deactivated_users_come_as_upserts() -> None:
    spec, hooks = load("salesforce")
    contacts = spec.collections["contacts"]
    q = "SELECT Id, IsActive, SystemModstamp FROM User WHERE UserType = 'Standard'"
    listing = contacts.list.model_copy(update={"params": {"q": q}})
    spec = spec.model_copy(update={"collections": {"contacts": contacts.model_copy(update={"list": listing})}})
    sim = SalesforceSimulator(records=10)
    parameters, credentials = sim.connection(BASE)
    transport = httpx.ASGITransport(app=sim.app)
    async with Connector(
        spec, parameters=parameters, credentials=credentials, hooks=hooks, transport=transport
    ) as users:
        first = await pull_changes(users, "contacts")
        sim.delete(1)
        later = await pull_changes(users, "contacts", first.since)
    assert len(first.changes) == 10  # the automated and guest users are filtered out
    assert [(c.kind, c.record and c.record["IsActive"]) for c in later.changes] == [("upsert", False)]


async def test_rate_limited_listing_backs_off_and_completes(waits: list[float]) -> None:
    sim = SalesforceSimulator(records=2500)
    sim.inject(status_429=3)
    async with connect(sim) as connector:
        pages = [page async for page in connector.pages("contacts")]
    assert sum(len(p.records) for p in pages) == 2500 and waits == [0.0, 0.0, 0.0]


def test_concurrency_limit_is_retryable_with_backoff() -> None:
    body = [
        {
            "message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
    ]
    error = classify_error(response(403, body, {"Sforce-Limit-Info": "api-usage=10/100000"}))
    assert isinstance(error, RetryableError) and error.retry_after is None


@pytest.mark.parametrize(
    ("message", "usage"),
    [("TotalRequests Limit exceeded.", "api-usage=9/100000"), ("Limit exceeded.", "api-usage=5/5")],
)
def test_a_spent_daily_allocation_waits_an_hour(message: str, usage: str) -> None:
    error = classify_error(
        response(403, [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}], {"Sforce-Limit-Info": usage})
    )
    assert isinstance(error, RetryableError) and error.retry_after == DAILY_LIMIT_WAIT


def test_other_403s_stay_auth_errors() -> None:
    assert classify_error(response(403, [{"message": "no", "errorCode": "INSUFFICIENT_ACCESS"}])) is None
    assert classify_error(response(401, [{"message": "x", "errorCode": "INVALID_SESSION_ID"}])) is None


async def test_refused_session_raises_auth_error() -> None:
    sim = SalesforceSimulator(records=3)
    parameters, _ = sim.connection(BASE)
    transport = httpx.ASGITransport(app=sim.app)
    async with open_connector(
        "salesforce", parameters=parameters, credentials=sim.bad_credentials(), transport=transport
    ) as connector:
        with pytest.raises(AuthError):
            await connector.get("contacts", sim.ids()[0])


def test_yaml_declares_the_budget_page_size_and_users_udm() -> None:
    spec, hooks = load("salesforce")
    assert spec.rate_limit is not None and spec.rate_limit.requests < 100_000 and spec.rate_limit.per_seconds == 86_400
    assert spec.collection_for("users") == "contacts"
    assert spec.collections["contacts"].list.paginator.page_size == 2000
    assert hooks.changes is not None and hooks.classify_error is not None


async def test_udm_fields_map_a_listed_contact() -> None:
    sim = SalesforceSimulator(records=3)
    async with connect(sim) as connector:
        record = [r async for page in connector.pages("contacts") for r in page.records][0]
    mapping = compile_mapping(load("salesforce")[0].collections["contacts"].udm_fields, origin="salesforce")
    user = User(**mapping.render({"raw": record}))
    person = sim.find(record["Id"])
    assert person is not None and user.email == person.email and user.full_name == person.full_name
    assert user.company == person.company and user.active is True and user.updated_at is not None
