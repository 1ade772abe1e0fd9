"""A webhook is a hint: a deletion reaches the team's app only when the source confirms it (404 or 410), on
real processes (HubSpot simulator, demo app, Prefect) with the receiver in front of the incremental import."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from flows.full_import import full_import
from flows.incremental_import import IncrementalSummary, incremental_import
from flows.runtime import ImportJob
from inlet.receiver import create_receiver
from inlet.store import Vault, add_connection, open_store
from tests.conftest import SIM_TOKEN, InletEnv, InletEnvFactory
from tests.security.conftest import Clock
from tests.security.deliveries import Delivery, hubspot_events, hubspot_v1, hubspot_v3

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers the httpx2 fork; plain httpx works the same
    from starlette.testclient import TestClient

TENANT, CONNECTION, SECRET = "acme", "acme-hooks", "hooks-app-secret-41"
ROUTE = f"/webhooks/hubspot/{TENANT}/{CONNECTION}"


@dataclass
class Source:
    env: InletEnv
    client: TestClient
    clock: Clock

    def deletion(self, object_id: str, event: int, signed: str = "v3") -> Delivery:
        body = hubspot_events(("deletion", int(object_id)), first_event=event)
        if signed == "v1":
            return hubspot_v1(ROUTE, SECRET, body)
        return hubspot_v3("http://testserver", ROUTE, SECRET, body, self.clock())

    def post(self, delivery: Delivery) -> int:
        response = self.client.post(delivery.path, content=delivery.body, headers=list(delivery.headers))
        return int(response.status_code)

    def apply(self) -> IncrementalSummary:
        return asyncio.run(incremental_import(TENANT, CONNECTION))

    def app_ids(self) -> set[str]:
        return {r["external_id"] for r in self.env.app_records(connection=CONNECTION)}


@pytest.fixture
def source(inlet_env: InletEnvFactory) -> Iterator[Source]:
    """20 contacts imported into the demo app through connection acme-hooks, and its receiver."""
    env = inlet_env(records=20)
    engine, vault = open_store(env.settings.store_url), Vault.from_settings(env.settings)
    credentials = {"token": SecretStr(SIM_TOKEN), "webhook_secret": SecretStr(SECRET)}
    add_connection(engine, vault, tenant_id=TENANT, connection_id=CONNECTION, app="hubspot",
                   parameters={"base_url": env.simulator}, credentials=credentials)  # fmt: skip
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    clock = Clock(time.time())
    with TestClient(create_receiver(engine, vault, lambda t, c: None, clock=clock)) as client:
        yield Source(env, client, clock)


def test_a_deletion_webhook_for_a_record_the_source_still_has_deletes_nothing(source: Source) -> None:
    live = sorted(source.app_ids())[0]
    assert source.post(source.deletion(live, 1)) == 200
    summary = source.apply()
    assert (summary.deleted, summary.fetched) == (0, 1) and live in source.app_ids()
    assert source.env.app_stats()["deleted"] == 0


def test_a_deletion_the_source_confirms_is_applied(source: Source) -> None:
    gone = source.env.sim("mutate", {"delete": 1})["deleted"][0]
    assert source.post(source.deletion(gone, 2)) == 200
    assert source.apply().deleted == 1 and gone not in source.app_ids()


def test_a_captured_deletion_replayed_deletes_nothing_even_after_the_retention(source: Source) -> None:
    """The issue's attack: a deletion replayed with one extra header. Refused while its receipt lives; let
    in as a hint after (v1 signatures never expire), and then the source says the record is there."""
    live = sorted(source.app_ids())[1]
    captured = source.deletion(live, 3, signed="v1")
    assert source.post(captured) == 200
    source.apply()
    assert source.post(captured.with_headers(("X-Replay-Signature", "1"))) == 401
    source.clock.now += 2 * 86_400
    assert source.post(captured.with_headers(("X-Replay-Signature", "2"))) == 200
    assert source.apply().deleted == 0 and live in source.app_ids() and len(source.app_ids()) == 20
