"""What one app's writes do beyond the shared contract (tests/connectors/test_writes.py): HubSpot's 409 with the
existing id and its INTEGRATION source, a create whose answer is lost (found, not made twice; or given up where
the app has no lookup), Zendesk's create_or_update, Salesforce's LastModifiedById marker, Pipedrive's webhook
source, Google's etag rules and the batch endpoints' limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from connectors import (
    Connector,
    RetryableError,
    WriteConflict,
    WriteOp,
    WriteRejected,
    event_by_inlet,
    find_existing,
    modified_by_inlet,
    write,
    write_batch,
)
from connectors.registry import make_simulator, open_connector
from connectors.simulation import SimulatorBase
from connectors.spec import RetryPolicy
from tests.support.oauth import SIMULATOR_EGRESS
from tests.support.receiver import Receiver

FAST = RetryPolicy(attempts=4, backoff_seconds=0, max_backoff_seconds=0, max_wait_seconds=60)
BASE = "https://simulator.test"


class LosesFirstAnswer(httpx.AsyncBaseTransport):
    """Passes requests to the simulator, but answers the first POST with a 503 after the app handled it: a
    create whose answer never came back."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.lost = 0
        self.posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and not request.url.path.endswith("/search"):
            self.posts += 1
            if self.lost == 0:
                self.lost += 1
                await response.aread()
                return httpx.Response(503, content=b"upstream timed out", request=request)
        return response


def opened(sim: SimulatorBase, transport: httpx.AsyncBaseTransport | None = None, **extra: str) -> Connector:
    parameters, credentials = sim.connection(BASE)
    return open_connector(
        sim.connector,
        parameters={**parameters, **extra},
        credentials=credentials,
        transport=transport or httpx.ASGITransport(app=sim.app),
        retry=FAST,
        egress=SIMULATOR_EGRESS,
    )


@pytest.fixture
async def hubspot() -> AsyncIterator[tuple[SimulatorBase, Connector]]:
    sim = make_simulator("hubspot", 3)
    async with opened(sim) as connector:
        yield sim, connector


async def test_hubspot_a_taken_email_is_a_conflict_naming_the_existing_contact(
    hubspot: tuple[SimulatorBase, Connector],
) -> None:
    sim, connector = hubspot
    existing = sim.ids()[1]
    email = (await connector.get("contacts", existing) or {})["properties"]["email"]
    with pytest.raises(WriteConflict) as info:
        await write(connector, WriteOp("create", "contacts", None, {"email": email, "firstname": "Dup"}, "h-1"))
    assert info.value.existing_id == existing and len(sim.ids()) == 3
    assert await find_existing(connector, "contacts", {"email": email}) == existing
    assert await find_existing(connector, "contacts", {"firstname": "no email"}) is None


async def test_hubspot_history_marks_api_writes_as_the_integration(hubspot: tuple[SimulatorBase, Connector]) -> None:
    sim, connector = hubspot
    target = sim.ids()[0]
    await write(connector, WriteOp("update", "contacts", target, {"jobtitle": "CTO"}, "h-2"))
    sim.advance(1)
    sim.update([sim.ids()[2]], {"title": "By hand"})
    request = connector.request("GET", f"/crm/v3/objects/contacts/{target}", {"propertiesWithHistory": "jobtitle"})
    mine = (await connector.send(request)).json()["propertiesWithHistory"]["jobtitle"][0]
    request = connector.request(
        "GET", f"/crm/v3/objects/contacts/{sim.ids()[2]}", {"propertiesWithHistory": "jobtitle"}
    )
    theirs = (await connector.send(request)).json()["propertiesWithHistory"]["jobtitle"][0]
    assert (mine["value"], mine["sourceType"]) == ("CTO", "INTEGRATION")
    assert (theirs["value"], theirs["sourceType"]) == ("By hand", "CRM_UI")


async def test_hubspot_batch_endpoints_write_all_or_nothing_within_100(
    hubspot: tuple[SimulatorBase, Connector],
) -> None:
    sim, connector = hubspot
    inputs = [{"properties": {"email": f"b{i}@example.org", "firstname": f"B{i}"}} for i in range(3)]
    bad = [*inputs, {"properties": {"hs_object_id": "1"}}]
    batch = "/crm/v3/objects/contacts/batch"
    refused = await connector.attempt(connector.request("POST", f"{batch}/create", json={"inputs": bad}), (400,))
    assert isinstance(refused, httpx.Response) and refused.status_code == 400 and len(sim.ids()) == 3
    too_many = [{"properties": {"firstname": str(i)}} for i in range(101)]
    over = await connector.attempt(connector.request("POST", f"{batch}/create", json={"inputs": too_many}), (400,))
    assert isinstance(over, httpx.Response) and over.status_code == 400
    made = (await connector.send(connector.request("POST", f"{batch}/create", json={"inputs": inputs}))).json()
    ids = [r["id"] for r in made["results"]]
    assert made["status"] == "COMPLETE" and len(sim.ids()) == 6
    archive = [{"id": i} for i in [*ids, "99999"]]
    archived = await connector.send(connector.request("POST", f"{batch}/archive", json={"inputs": archive}))
    assert archived.status_code == 204 and len(sim.ids()) == 3


async def test_a_lost_create_answer_is_looked_up_not_repeated() -> None:
    sim = make_simulator("hubspot", 2)
    transport = LosesFirstAnswer(sim.app)
    async with opened(sim, transport) as connector:
        fields = {"email": "once@example.org", "firstname": "Once"}
        result = await write(connector, WriteOp("create", "contacts", None, fields, "h-3"))
    assert result.found_existing and transport.posts == 1
    assert len(sim.ids()) == 3 and result.external_id in sim.ids()


async def test_a_lost_create_answer_without_a_lookup_is_given_back_not_resent() -> None:
    sim = make_simulator("pipedrive", 2)
    transport = LosesFirstAnswer(sim.app)
    async with opened(sim, transport) as connector:
        with pytest.raises(RetryableError):
            await write(connector, WriteOp("create", "persons", None, {"name": "Once"}, "p-1"))
    assert transport.posts == 1 and len(sim.ids()) == 3  # made once by the lost request, never resent


async def test_zendesk_a_repeated_create_updates_the_user_it_made() -> None:
    sim = make_simulator("zendesk", 2)
    async with opened(sim) as connector:
        fields = {"name": "Twice Made", "email": "twice@example.org"}
        first = await write(connector, WriteOp("create", "users", None, fields, "z-1"))
        again = await write(connector, WriteOp("create", "users", None, fields, "z-1"))
        with pytest.raises(WriteRejected) as info:
            await write(connector, WriteOp("update", "users", first.external_id, {"email": "bad address"}, "z-2"))
    assert first.external_id == again.external_id and len(sim.ids()) == 3
    assert "not properly formatted" in info.value.app_message and info.value.status == 422


async def test_salesforce_last_modified_by_tells_inlets_writes_from_others() -> None:
    from connectors.salesforce.simulator.writes import API_USER_ID

    sim = make_simulator("salesforce", 3)
    async with opened(sim, write_user=API_USER_ID) as connector:
        mine, theirs = sim.ids()[0], sim.ids()[1]
        await write(connector, WriteOp("update", "contacts", mine, {"Title": "CTO"}, "s-1"))
        sim.update([theirs])
        records = {r["Id"]: r async for page in connector.pages("contacts") for r in page.records}
        with pytest.raises(WriteRejected, match="MALFORMED_QUERY|If-Unmodified-Since"):
            await write(connector, WriteOp("update", "contacts", mine, {"Title": "x"}, "s-2", etag="not a date"))
    assert modified_by_inlet(connector, "contacts", records[mine]) is True
    assert modified_by_inlet(connector, "contacts", records[theirs]) is False
    async with opened(sim) as anonymous:  # a connection that does not say who inlet writes as
        assert modified_by_inlet(anonymous, "contacts", records[mine]) is None


async def test_pipedrive_webhooks_of_api_writes_name_the_api_user() -> None:
    from connectors.pipedrive.simulator.writes import API_USER_ID

    sim = make_simulator("pipedrive", 2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE) as c:
        hook = {"subscription_url": "https://inlet.example/webhooks/pipedrive", "event_action": "*"}
        created = await c.post(
            "/api/v1/webhooks", json={**hook, "event_object": "person"}, headers={"x-api-token": sim.token}
        )
    assert created.status_code == 201, created.text
    receiver = Receiver("pipedrive", "", now=sim.clock.time)
    async with opened(sim) as connector:
        await write(connector, WriteOp("update", "persons", sim.ids()[0], {"job_title": "CTO"}, "p-2"))
    sim.update([sim.ids()[1]])
    await sim.deliver(receiver.client())
    metas = {m["entity_id"]: m for m in (orjson.loads(r.body)["meta"] for r in receiver.accepted())}
    assert metas[sim.ids()[0]]["user_id"] == str(API_USER_ID) and metas[sim.ids()[0]]["change_source"] == "api"
    assert metas[sim.ids()[1]]["change_source"] == "app"


async def test_google_people_etag_rules() -> None:
    sim = make_simulator("google_people", 2)
    async with opened(sim) as connector:
        target = sim.ids()[0]
        with pytest.raises(WriteRejected, match="etag"):  # refused before anything is sent
            await write(connector, WriteOp("update", "contacts", target, {"names": []}, "g-1"))
        record = await connector.get("contacts", target)
        assert record is not None
        first = await write(
            connector,
            WriteOp("update", "contacts", target, {"names": [{"givenName": "A"}]}, "g-2", etag=record["etag"]),
        )
        second = await write(
            connector, WriteOp("update", "contacts", target, {"names": [{"givenName": "B"}]}, "g-3", etag=first.etag)
        )
        with pytest.raises(WriteConflict):  # the first etag is stale now
            await write(
                connector,
                WriteOp("update", "contacts", target, {"names": [{"givenName": "C"}]}, "g-4", etag=record["etag"]),
            )
        two_names = {"names": [{"givenName": "A"}, {"givenName": "B"}]}
        with pytest.raises(WriteRejected, match="singleton"):
            await write(connector, WriteOp("update", "contacts", target, two_names, "g-5", etag=second.etag))
    person = sim.find(target)
    assert person is not None and person.first == "B" and first.etag != second.etag


async def test_hubspot_webhooks_tell_inlets_writes_from_a_persons() -> None:
    from connectors.hubspot.hooks import parse_webhook
    from connectors.hubspot.simulator.webhooks import APP_ID

    sim = make_simulator("hubspot", 2)
    sim.configure_webhooks("https://inlet.example/webhooks/hubspot", "s3cret", ["contact.creation"])  # type: ignore[attr-defined]
    receiver = Receiver("hubspot", "s3cret", now=sim.clock.time)
    async with opened(sim, write_user=str(APP_ID)) as connector:
        mine = await write(connector, WriteOp("create", "contacts", None, {"email": "m@example.org"}, "h-9"))
        theirs = sim.create([{"email": "t@example.org"}])[0]
        await sim.deliver(receiver.client())
        events = {e.external_id: e for r in receiver.accepted() for e in parse_webhook(r)}
        assert event_by_inlet(connector, events[mine.external_id]) is True
        assert event_by_inlet(connector, events[theirs]) is False
    async with opened(sim) as anonymous:
        assert event_by_inlet(anonymous, events[mine.external_id]) is None


async def test_a_lost_create_the_lookup_cannot_see_yet_is_recognised_by_the_apps_409() -> None:
    sim = make_simulator("hubspot", 2, seed=0)
    sim.index_lag_ms = 60_000  # type: ignore[attr-defined]  # the search index lags: the lookup finds nothing
    transport = LosesFirstAnswer(sim.app)
    async with opened(sim, transport) as connector:
        fields = {"email": "lagged@example.org", "firstname": "Lagged"}
        result = await write(connector, WriteOp("create", "contacts", None, fields, "h-10"))
    assert result.found_existing and transport.posts == 2 and len(sim.ids()) == 3
    person = sim.find(result.external_id)
    assert person is not None and person.email == "lagged@example.org"


async def test_hubspot_write_batch_creates_updates_and_archives_matching_results_by_trace_id() -> None:
    from connectors.hubspot.simulator import HubSpotSimulator

    sim = HubSpotSimulator(2, batch_reversed=True)  # results come back in another order than the inputs

    def create(i: int, email: str) -> WriteOp:
        return WriteOp("create", "contacts", None, {"email": email, "firstname": f"B{i}", "x": 1}, f"k{i}")

    async with opened(sim) as connector:
        made = await write_batch(connector, [create(i, f"b{i}@example.org") for i in range(3)])
        people = [sim.find(r.external_id) for r in made]
        assert [p.email if p else None for p in people] == ["b0@example.org", "b1@example.org", "b2@example.org"]
        assert all(r.dropped == ("x",) for r in made) and len(sim.ids()) == 5

        updates = [
            WriteOp("update", "contacts", r.external_id, {"jobtitle": "CTO"}, f"u{i}") for i, r in enumerate(made)
        ]
        await write_batch(connector, updates)
        assert [p.title if p else None for p in (sim.find(r.external_id) for r in made)] == ["CTO"] * 3

        with pytest.raises(WriteRejected):  # one bad input refuses the whole batch
            await write_batch(connector, [create(7, "n7@example.org"), create(8, "not an email")])
        assert len(sim.ids()) == 5

        sim.inject(status_429=1, retry_after=0)  # refused before any work: resent
        await write_batch(
            connector, [WriteOp("delete", "contacts", r.external_id, {}, f"d{i}") for i, r in enumerate(made)]
        )
        assert len(sim.ids()) == 2
