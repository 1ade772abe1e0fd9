"""The contract every connector keeps, checked against its simulator (faults included).

Parametrized over `connectors.registry.simulated()`: each connector whose simulator module has a
`make_simulator(records, seed, token)` factory built on `connectors.simulation.SimulatorBase`, those on
INLET_CONNECTORS_PATH included (`INLET_CONNECTORS_PATH=/my/connectors pytest tests/connectors/test_contract.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.base import Connector
from connectors.errors import AuthError, PaginationLoop
from connectors.incremental import pull_changes
from connectors.oauth import OAuth2Auth
from connectors.registry import builtin, load, make_simulator, open_connector, simulated
from connectors.simulation import SimulatorBase
from connectors.spec import RetryPolicy
from tests.support.oauth import SIMULATOR_EGRESS, MemoryTokens, asgi_client, oauth_parameters, sign_in

APPS = simulated()
FAST_RETRY = RetryPolicy(attempts=4, backoff_seconds=0, max_backoff_seconds=0, max_wait_seconds=30)
# every built-in connector must sign in by OAuth; one from outside inlet is held to it only when it declares OAuth
OAUTH_APPS = [app for app in APPS if app in builtin() or load(app)[0].oauth]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "app" in metafunc.fixturenames:
        oauth_only = metafunc.function.__name__ == "test_an_oauth_connection_lists_everything_across_token_expiries"
        metafunc.parametrize("app", OAUTH_APPS if oauth_only else APPS)


def users_collection(app: str) -> str:
    return load(app)[0].collection_for("users")


def page_size(app: str) -> int:
    size = load(app)[0].collections[users_collection(app)].list.paginator.page_size
    assert size, f"{app}: the users listing declares no page_size"
    return size


def connect(sim: SimulatorBase, *, bad_credentials: bool = False) -> Connector:
    parameters, credentials = sim.connection("https://simulator.test")
    return open_connector(
        sim.connector,
        parameters=parameters,
        credentials=sim.bad_credentials() if bad_credentials else credentials,
        transport=httpx.ASGITransport(app=sim.app),
        retry=FAST_RETRY,
        egress=SIMULATOR_EGRESS,
    )


async def listed_ids(connector: Connector, collection: str) -> list[str]:
    return [connector.record_id(collection, r) async for page in connector.pages(collection) for r in page.records]


@pytest.fixture
async def opened() -> AsyncIterator[list[Connector]]:
    connectors: list[Connector] = []
    yield connectors
    for connector in connectors:
        await connector.aclose()


@pytest.mark.parametrize("size", ["0", "1", "page", "page+1", "10000"])
async def test_lists_every_record_exactly_once(app: str, size: str, opened: list[Connector]) -> None:
    count = {"0": 0, "1": 1, "page": page_size(app), "page+1": page_size(app) + 1, "10000": 10_000}[size]
    sim = make_simulator(app, count)
    opened.append(connector := connect(sim))
    ids = await listed_ids(connector, users_collection(app))
    assert Counter(ids) == Counter(sim.ids()) and len(ids) == count


async def test_get_returns_the_record_and_none_for_a_missing_id(app: str, opened: list[Connector]) -> None:
    sim = make_simulator(app, 5)
    opened.append(connector := connect(sim))
    collection, wanted = users_collection(app), sim.ids()[2]
    record = await connector.get(collection, wanted)
    assert record is not None and connector.record_id(collection, record) == wanted
    assert await connector.get(collection, sim.delete([sim.ids()[0]])[0]) is None


async def test_changes_after_create_update_delete_are_exactly_those(app: str, opened: list[Connector]) -> None:
    sim = make_simulator(app, 40)
    opened.append(connector := connect(sim))
    collection = users_collection(app)
    first = await pull_changes(connector, collection)
    created, updated, deleted = sim.create(2), sim.update(3), sim.delete(2)
    later = await pull_changes(connector, collection, first.since)
    assert first.since and not later.resynced
    assert {c.external_id for c in later.changes if c.kind == "upsert"} == set(created) | set(updated)
    assert {c.external_id for c in later.changes if c.kind == "deleted"} == set(deleted)


async def test_an_expired_token_falls_back_to_a_full_resync(app: str, opened: list[Connector]) -> None:
    sim = make_simulator(app, 30)
    opened.append(connector := connect(sim))
    collection = users_collection(app)
    since = (await pull_changes(connector, collection)).since
    sim.inject(expire_tokens=True)
    result = await pull_changes(connector, collection, since)
    if not sim.tokens_expire:  # a timestamp watermark (HubSpot search): an old one keeps working
        assert not result.resynced and result.changes == [] and result.since
        return
    assert result.resynced and result.since
    assert sorted(c.external_id for c in result.changes if c.kind == "upsert") == sorted(sim.ids())


async def test_429s_are_waited_out_and_the_listing_completes(
    app: str, opened: list[Connector], waits: list[float]
) -> None:
    sim = make_simulator(app, page_size(app) * 2)
    sim.inject(status_429=2, retry_after=0.01)
    opened.append(connector := connect(sim))
    assert len(await listed_ids(connector, users_collection(app))) == page_size(app) * 2
    assert len(waits) == 2


async def test_refused_credentials_raise_the_auth_error(app: str, opened: list[Connector]) -> None:
    sim = make_simulator(app, 3)
    opened.append(connector := connect(sim, bad_credentials=True))
    with pytest.raises(AuthError):
        await listed_ids(connector, users_collection(app))


async def test_a_page_that_repeats_its_token_raises_the_loop_error(app: str, opened: list[Connector]) -> None:
    sim = make_simulator(app, page_size(app) * 3)
    opened.append(connector := connect(sim))
    sim.inject(repeat_token=1)
    with pytest.raises(PaginationLoop):
        await listed_ids(connector, users_collection(app))


async def test_an_oauth_connection_lists_everything_across_token_expiries(app: str, opened: list[Connector]) -> None:
    assert load(app)[0].oauth.get("authorization_code"), f"{app}: connector.yaml declares no OAuth sign-in"
    sim = make_simulator(app, page_size(app) * 3)
    assert sim.oauth is not None
    async with asgi_client(sim) as http:
        source = MemoryTokens(http, app, "https://simulator.test", await sign_in(http, app, "https://simulator.test"))
        connector = open_connector(
            app,
            parameters=oauth_parameters(app, "https://simulator.test"),
            auth=OAuth2Auth(source),
            transport=httpx.ASGITransport(app=sim.app),
            retry=FAST_RETRY,
            egress=SIMULATOR_EGRESS,
        )
        opened.append(connector)
        ids, pages = [], 0
        async for page in connector.pages(users_collection(app)):
            ids += [connector.record_id(users_collection(app), r) for r in page.records]
            pages += 1
            sim.oauth.expire_access_tokens()  # every page's token dies: the next request gets a 401
        assert sorted(ids) == sorted(sim.ids()) and pages >= 3
        assert source.refreshes == sim.oauth.counts["refresh_token"] == pages - 1
