"""The shipped HubSpot connector (YAML plus hooks) against the in-memory HubSpot simulator."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from connectors import registry
from connectors.base import Connector, Page
from connectors.errors import AuthError, MalformedPage, RetryableError
from connectors.hubspot.hooks import retry_after
from connectors.hubspot.simulator import HubSpotSimulator

TOKEN = "pat-na1-11111111-test-token-5e7d"
BASE = "https://api.hubapi.com"


def open_hubspot(sim: HubSpotSimulator, token: str = TOKEN) -> Connector:
    return registry.open_connector(
        "hubspot",
        parameters={"base_url": BASE},
        credentials={"token": SecretStr(token)},
        transport=httpx.ASGITransport(app=sim.app),
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
