"""The Salesforce simulator against the facts of api-specs/salesforce.md beyond the listing
(connectors/salesforce/CONFORMANCE.md): the versions resource, SOQL's full WHERE, LIMIT and OFFSET, compound
fields, the Recycle Bin, the replication id cap, the org's switches and limits, and the OAuth flows."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from connectors.salesforce.simulator import DEFAULT_TOKEN, SalesforceSimulator
from connectors.simulation import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from tests.support.oauth import asgi_client

BASE = "https://acme.my.salesforce.com"
DATA = "/services/data/v60.0"
DAY = 86_400


def client(sim: SalesforceSimulator) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=headers)


async def soql(c: httpx.AsyncClient, q: str, resource: str = "query") -> httpx.Response:
    return await c.get(f"{DATA}/{resource}", params={"q": q})


async def ids(c: httpx.AsyncClient, q: str) -> list[str]:
    return [r["Id"] for r in (await soql(c, q)).json()["records"]]


def window(minutes_before: int = 10) -> dict[str, str]:
    start, end = (datetime.now(UTC) + timedelta(minutes=m) for m in (-minutes_before, 1))
    return {"start": start.isoformat(), "end": end.isoformat()}


# -- versions, SOQL ----------------------------------------------------------------------------------


async def test_the_versions_resource_needs_no_session_and_counts_against_no_limit() -> None:
    sim = SalesforceSimulator(1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE) as anonymous:
        versions = (await anonymous.get("/services/data/")).json()
    assert {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"} in versions
    assert sim.stats()["requests"] == 0


async def test_where_takes_or_not_and_parentheses_as_the_keyset_pattern_needs() -> None:
    sim = SalesforceSimulator(30)
    async with client(sim) as c:
        rows = (await soql(c, "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id")).json()["records"]
        pivot = rows[10]
        stamp = pivot["SystemModstamp"].replace(".000+0000", "Z")
        keyset = f"(SystemModstamp > {stamp}) OR (SystemModstamp = {stamp} AND Id > '{pivot['Id']}')"
        q = f"SELECT Id FROM Contact WHERE {keyset}"
        after = await ids(c, f"{q} ORDER BY SystemModstamp, Id")
        negated = await ids(c, f"SELECT Id FROM Contact WHERE NOT (Id = '{pivot['Id']}')")
    assert after == [r["Id"] for r in rows[11:]] and len(negated) == 29 and pivot["Id"] not in negated


async def test_in_not_in_and_like() -> None:
    sim = SalesforceSimulator(10)
    wanted = sim.ids()[:3]
    listed = ", ".join(f"'{i}'" for i in wanted)
    last = sim.people.all[0].last
    async with client(sim) as c:
        inside = await ids(c, f"SELECT Id FROM Contact WHERE Id IN ({listed})")
        outside = await ids(c, f"SELECT Id FROM Contact WHERE Id NOT IN ({listed})")
        like = (await soql(c, f"SELECT LastName FROM Contact WHERE LastName LIKE '{last[:3].lower()}%'")).json()
    assert inside == wanted and len(outside) == 7 and not set(outside) & set(wanted)
    assert like["totalSize"] >= 1 and {r["LastName"][:3] for r in like["records"]} == {last[:3]}


async def test_limit_and_offset_shape_the_result_and_offset_is_capped_at_2000() -> None:
    sim = SalesforceSimulator(20)
    async with client(sim) as c:
        every = await ids(c, "SELECT Id FROM Contact ORDER BY Id")
        window_ = (await soql(c, "SELECT Id FROM Contact ORDER BY Id LIMIT 5 OFFSET 10")).json()
        too_far = await soql(c, "SELECT Id FROM Contact LIMIT 5 OFFSET 2001")
    assert window_["totalSize"] == 5 and [r["Id"] for r in window_["records"]] == every[10:15]
    assert too_far.status_code == 400 and too_far.json()[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"


async def test_order_by_nulls_last_puts_contacts_without_a_phone_at_the_end() -> None:
    async with client(SalesforceSimulator(20)) as c:
        phones = [
            r["Phone"] for r in (await soql(c, "SELECT Phone FROM Contact ORDER BY Phone NULLS LAST")).json()["records"]
        ]
    known = [p for p in phones if p is not None]
    assert None in phones and phones == known + [None] * (len(phones) - len(known)) and known == sorted(known)


@pytest.mark.parametrize(
    "q",
    [
        "SELECT Id FROM Contact WHERE Email = 'x' AND",
        "SELECT Id FROM Contact LIMIT ten",
        "SELECT Id FROM Contact GROUP",
    ],
)
async def test_incomplete_or_unknown_clauses_are_malformed_not_ignored(q: str) -> None:
    async with client(SalesforceSimulator(3)) as c:
        answer = await soql(c, q)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "MALFORMED_QUERY"


async def test_a_compound_address_is_nested_and_cannot_be_filtered() -> None:
    async with client(SalesforceSimulator(3)) as c:
        record = (await soql(c, "SELECT Id, MailingAddress FROM Contact")).json()["records"][0]
        filtered = await soql(c, "SELECT Id FROM Contact WHERE MailingAddress = 'x'")
        unknown = await soql(c, "SELECT Emial FROM Contact")
    assert set(record["MailingAddress"]) >= {"street", "city", "postalCode", "country"}
    assert filtered.status_code == 400 and filtered.json()[0]["errorCode"] == "INVALID_FIELD"
    assert unknown.json()[0]["fields"] == []


# -- the Recycle Bin, replication ---------------------------------------------------------------------


async def test_an_undelete_brings_a_contact_back_with_a_new_system_modstamp() -> None:
    sim = SalesforceSimulator(5)
    gone = sim.delete(sim.ids()[:1])
    sim.restore(gone)
    async with client(sim) as c:
        back = await ids(c, "SELECT Id FROM Contact")
        updated = (await c.get(f"{DATA}/sobjects/Contact/updated/", params=window())).json()["ids"]
    assert gone[0] in back and updated == gone


async def test_emptying_the_recycle_bin_drops_contacts_from_query_all_and_trims_the_delete_log() -> None:
    sim = SalesforceSimulator(5)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    deleted = sim.delete(sim.ids()[:2])
    sim.purge(deleted[:1])
    async with client(sim) as c:
        everything = await ids(c, "SELECT Id FROM Contact")
        all_rows = [r["Id"] for r in (await soql(c, "SELECT Id FROM Contact", "queryAll")).json()["records"]]
        log = (await c.get(f"{DATA}/sobjects/Contact/deleted/", params=window())).json()
    assert deleted[0] not in all_rows and deleted[1] in all_rows and len(everything) == 3
    assert datetime.fromisoformat(log["earliestDateAvailable"]) > start and log["deletedRecords"] == []


async def test_a_commit_lag_stamps_a_change_older_than_the_moment_it_shows() -> None:
    sim = SalesforceSimulator(3, commit_lag_ms=120_000)
    [changed] = sim.update(sim.ids()[:1])
    async with client(sim) as c:
        [row] = (await soql(c, f"SELECT SystemModstamp FROM Contact WHERE Id = '{changed}'")).json()["records"]
    shown = datetime.strptime(row["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.000%z").timestamp()
    assert 110 <= sim.clock.time() - shown <= 130


async def test_limits_tell_the_daily_allocation_left() -> None:
    sim = SalesforceSimulator(2, daily_limit=50)
    async with client(sim) as c:
        await soql(c, "SELECT Id FROM Contact")
        limits = (await c.get(f"{DATA}/limits")).json()
    assert limits["DailyApiRequests"] == {"Max": 50, "Remaining": 48}


async def test_deleted_contacts_are_found_in_query_all_by_is_deleted() -> None:
    sim = SalesforceSimulator(6)
    gone = sim.delete(sim.ids()[:2])
    async with client(sim) as c:
        found = [
            r["Id"]
            for r in (await soql(c, "SELECT Id FROM Contact WHERE IsDeleted = true", "queryAll")).json()["records"]
        ]
    assert found == gone


async def test_the_background_job_trims_a_long_delete_log_every_two_hours() -> None:
    sim = SalesforceSimulator(5, delete_log_cap=2)
    deleted = [sim.delete(sim.ids()[:1])[0] for _ in range(3)]
    sim.advance(2 * 3600)
    async with client(sim) as c:
        log = (await c.get(f"{DATA}/sobjects/Contact/deleted/", params=window(200))).json()
    kept = [r["id"] for r in log["deletedRecords"]]
    assert kept == deleted[1:] and log["earliestDateAvailable"] == log["deletedRecords"][0]["deletedDate"]


async def test_more_ids_than_the_cap_is_exceeded_id_limit() -> None:
    sim = SalesforceSimulator(5, replication_id_limit=2)
    sim.update(3)
    async with client(sim) as c:
        answer = await c.get(f"{DATA}/sobjects/Contact/updated/", params=window())
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


async def test_a_query_locator_lives_two_days() -> None:
    sim = SalesforceSimulator(500)
    async with client(sim) as c:
        first = (
            await c.get(
                f"{DATA}/query",
                params={"q": "SELECT Id FROM Contact"},
                headers={"Sforce-Query-Options": "batchSize=200"},
            )
        ).json()
        sim.advance(DAY)
        fresh = await c.get(first["nextRecordsUrl"])
        sim.advance(DAY + 60)
        stale = await c.get(first["nextRecordsUrl"])
    assert fresh.status_code == 200 and stale.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


# -- the org: switches and limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "status", "code"),
    [
        ({"api_enabled": False}, 403, "API_DISABLED_FOR_ORG"),
        ({"unavailable": True}, 503, "SERVER_UNAVAILABLE"),
        ({"hidden_sobjects": "Contact"}, 403, "INSUFFICIENT_ACCESS"),
    ],
)
async def test_the_orgs_refusals_are_error_arrays(option: dict[str, object], status: int, code: str) -> None:
    async with client(SalesforceSimulator(2, **option)) as c:  # type: ignore[arg-type]
        answer = await soql(c, "SELECT Id FROM Contact")
    assert (
        answer.status_code == status and answer.json()[0]["errorCode"] == code and "Sforce-Limit-Info" in answer.headers
    )


async def test_concurrent_long_running_requests_past_the_limit_are_request_limit_exceeded() -> None:
    sim = SalesforceSimulator(2, long_running_seconds=0.05, concurrent_limit=1)
    sim.inject(slow_seconds=0.2)
    async with client(sim) as c:
        answers = await asyncio.gather(soql(c, "SELECT Id FROM Contact"), soql(c, "SELECT Id FROM Contact"))
    refused = [a for a in answers if a.status_code == 403]
    assert len(refused) == 1 and "ConcurrentRequests" in refused[0].json()[0]["message"]


async def test_the_daily_allocation_is_a_rolling_24_hours() -> None:
    sim = SalesforceSimulator(2, daily_limit=1)
    async with client(sim) as c:
        statuses = [(await soql(c, "SELECT Id FROM Contact")).status_code for _ in range(2)]
        sim.advance(DAY + 1)
        later = await soql(c, "SELECT Id FROM Contact")
    assert statuses == [200, 403] and later.status_code == 200 and later.headers["Sforce-Limit-Info"] == "api-usage=1/1"


# -- OAuth flows --------------------------------------------------------------------------------------


def assertion(**claims: object) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


async def test_client_credentials_and_jwt_bearer_flows_issue_sessions() -> None:
    sim = SalesforceSimulator(2)
    token_url = "/services/oauth2/token"
    jwt = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    expiry = int(sim.clock.time()) + 300
    async with asgi_client(sim) as http:
        credentials = await http.post(
            token_url,
            data={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET},
        )
        signed = await http.post(
            token_url, data={"grant_type": jwt, "assertion": assertion(iss=SIM_CLIENT_ID, sub="ada@acme", exp=expiry)}
        )
        forged = await http.post(
            token_url, data={"grant_type": jwt, "assertion": assertion(iss="other", sub="x", exp=expiry)}
        )
        session = signed.json()["access_token"]
        used = await http.get(
            f"{DATA}/query", params={"q": "SELECT Id FROM Contact"}, headers={"Authorization": f"Bearer {session}"}
        )
    assert credentials.status_code == 200 and "instance_url" in signed.json() and "refresh_token" not in signed.json()
    assert forged.status_code == 400 and used.status_code == 200
