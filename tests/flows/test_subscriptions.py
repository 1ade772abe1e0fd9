"""Webhook subscriptions end to end, on real processes over loopback: each app's simulator, the receiver
(`inlet serve`), the demo app and the session's Prefect server. inlet creates the subscription at the app, the
app's webhooks reach the receiver and then the team's app; Graph's is renewed before it expires and a `missed`
lifecycle event resyncs the connection; paused or removed, the subscription is deleted at the app."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from connectors.registry import make_simulator, open_connector
from flows.full_import import full_import
from flows.incremental_import import incremental_import
from flows.runtime import ImportJob
from flows.scheduler import sync_connection, sync_scheduler
from inlet.local import free_port, start_process, stop_process
from inlet.service import (
    NO_PUBLIC_URL,
    Installation,
    connection_status,
    delete_connection,
    maintain_subscriptions,
    open_installation,
    pause,
    resume,
    set_policy,
    sync_status,
)
from inlet.service.setup import initialise
from inlet.settings import Settings, get_settings
from inlet.store import (
    Vault,
    add_connection,
    add_tenant,
    inbox,
    list_connections,
    open_store,
    remove_connection,
    subscription_of,
)
from tests.conftest import start_app_process
from tests.support.task_runs import serve_until_final

TENANT = "subs"


@dataclass
class World:
    """One app's simulator, the receiver and the demo app, with tenant `subs` and one connection to the app."""

    app: str
    connection: str
    settings: Settings
    engine: Engine
    simulator: str
    receiver: str | None
    demo: str
    home: Path
    parameters: dict[str, str]
    credentials: dict[str, SecretStr]

    @property
    def inst(self) -> Installation:
        return Installation(self.settings, self.engine)

    def tick(self) -> Any:
        """The subscriptions' part of a scheduler tick, in this process."""
        return asyncio.run(maintain_subscriptions(self.engine, Vault.from_settings(self.settings), self.settings))

    def sim(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.simulator}{path}"
        response = httpx.post(url, json=body, timeout=10) if body is not None else httpx.get(url, timeout=10)
        response.raise_for_status()
        return response.json()

    def api(self, path: str) -> Any:
        """A GET of the app's own API, as a client with the connection's credentials."""

        async def get() -> Any:
            async with self.connector() as connector:
                response = await connector.send(connector.request("GET", path))
                return orjson.loads(response.content)

        return asyncio.run(get())

    def connector(self) -> Any:
        policy = self.settings.egress.policy()
        return open_connector(self.app, parameters=self.parameters, credentials=self.credentials, egress=policy)

    def source(self) -> set[str]:
        """The live ids at the source, listed as a client would."""

        async def ids() -> set[str]:
            async with self.connector() as connector:
                collection = connector.spec.collection_for("users")
                return {
                    connector.record_id(collection, r) async for p in connector.pages(collection) for r in p.records
                }

        return asyncio.run(ids())

    def status(self) -> dict[str, Any]:
        """This connection's continuity row of `inlet status`."""
        [row] = [r for r in sync_status(self.inst, TENANT) if r["connection"] == self.connection]
        return row

    def app_ids(self) -> set[str]:
        rows = httpx.get(f"{self.demo}/records", params={"connection": self.connection}, timeout=30).json()
        return {row["external_id"] for row in rows}

    def import_all(self) -> None:
        asyncio.run(full_import(ImportJob(tenant=TENANT, connection=self.connection)))


WorldFactory = Callable[..., World]


@dataclass(frozen=True)
class Stack:
    """The processes every test of this module shares: the receiver (`inlet serve`) and the demo app."""

    env: dict[str, str]
    receiver: str
    demo: str
    home: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("subscriptions")
    app_port, receiver_port = free_port(), free_port()
    receiver = f"http://127.0.0.1:{receiver_port}"
    env = {
        "INLET_HOME": str(folder / "home"),
        "INLET_DESTINATION__URL": f"http://127.0.0.1:{app_port}",
        "INLET_SOURCE_RETRY__ATTEMPTS": "2",
        "INLET_SOURCE_RETRY__BACKOFF_SECONDS": "0",
        "INLET_EGRESS__ALLOW_HOSTS": '["127.0.0.1"]',
        "INLET_RECEIVER__PUBLIC_URL": receiver,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        initialise(settings)
        secret = settings.destination_secret()
        assert secret is not None
        add_tenant(open_store(settings.store_url), TENANT)
        get_settings.cache_clear()
    demo = start_app_process(app_port, folder, secret.get_secret_value())
    serve = [sys.executable, "-m", "inlet.cli", "serve", "--port", str(receiver_port)]
    try:
        process = start_process(
            serve, receiver + "/health", env={"PREFECT_API_URL": prefect_api, **env}, log_path=folder / "receiver.log"
        )
    except BaseException:
        stop_process(demo)
        raise
    yield Stack(env, receiver, f"http://127.0.0.1:{app_port}", folder)
    stop_process(process)
    stop_process(demo)


@pytest.fixture
def world(stack: Stack, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[WorldFactory]:
    """`world(app, ...)`: the app's simulator and a connection to it, named after the test."""
    started: list[Any] = []
    made: list[World] = []

    def factory(
        app: str, *, records: int = 30, public: bool = True, deliver_every: float = 0.2, lifetime: int | None = None
    ) -> World:
        env = dict(stack.env) if public else {k: v for k, v in stack.env.items() if k != "INLET_RECEIVER__PUBLIC_URL"}
        if lifetime is not None:
            env["INLET_RECEIVER__SUBSCRIPTION_SECONDS"] = str(lifetime)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        sim_port = free_port()
        simulator = f"http://127.0.0.1:{sim_port}"
        command = [sys.executable, "-m", f"connectors.{app}.simulator", "--port", str(sim_port)]
        command += ["--records", str(records), "--deliver-every", str(deliver_every)]
        started.append(start_process(command, simulator + "/_sim/stats", log_path=stack.home / f"{app}-{sim_port}.log"))
        engine = open_store(settings.store_url)
        parameters, credentials = make_simulator(app, 1).connection(simulator)
        connection = f"{app}-{request.node.name.split('[')[0][5:30].replace('_', '-')}-{sim_port}"
        add_connection(
            engine,
            Vault.from_settings(settings),
            tenant_id=TENANT,
            connection_id=connection,
            app=app,
            parameters=parameters,
            credentials=credentials,
        )
        receiver = stack.receiver if public else None
        made.append(
            World(
                app,
                connection,
                settings,
                engine,
                simulator,
                receiver,
                stack.demo,
                stack.home,
                parameters,
                dict(credentials),
            )  # fmt: skip
        )
        return made[-1]

    yield factory
    for w in made:  # the next test's ticks must not reach for this test's stopped simulator
        if subscription_of(w.engine, w.connection) is not None or w.connection in {
            c.id for c in list_connections(w.engine)
        }:
            remove_connection(w.engine, TENANT, w.connection)
    for process in started:
        stop_process(process)


def _until(condition: Callable[[], Any], what: str, step: Callable[[], Any] | None = None) -> Any:
    """Wait for a state: `condition()` truthy, calling `step()` between looks (a scheduler tick, a delivery)."""
    for _ in range(600):
        if found := condition():
            return found
        if step is not None:
            step()
        asyncio.run(asyncio.sleep(0.1))
    raise AssertionError(f"never reached: {what}")


def _start(world: World) -> None:
    """The full import, then webhooks on (the connection is imported, so no poll or import is due)."""
    world.import_all()
    set_policy(world.inst, TENANT, world.connection, webhooks=True)


# -- Microsoft Graph -----------------------------------------------------------------------------------------------


def test_a_graph_subscription_is_created_on_start_and_renewed_before_it_expires(world: WorldFactory) -> None:
    w = world("msgraph", lifetime=30)
    _start(w)
    summary = asyncio.run(
        sync_scheduler(run_seconds=0)
    )  # the scheduler's tick: the receiver answered Graph's handshake
    assert (summary.subscriptions_created, summary.imports, summary.polls) == (1, 0, 0)
    first = subscription_of(w.engine, w.connection)
    assert first is not None and first.remote_id is not None and first.expires_at is not None
    [made] = w.api("/v1.0/subscriptions")["value"]
    assert (
        made["id"] == first.remote_id
        and made["notificationUrl"] == f"{w.receiver}/webhooks/msgraph/{TENANT}/{w.connection}"
    )
    assert made["clientState"] not in (None, "") and made["lifecycleNotificationUrl"] == made["notificationUrl"]
    assert made["clientState"] not in (w.home / "receiver.log").read_text()  # the receiver logged the handshake

    def later() -> Any:
        row = subscription_of(w.engine, w.connection)
        return row if row and row.expires_at and first.expires_at and row.expires_at > first.expires_at else None

    renewed = _until(
        later, "the subscription renewed to a later expiry", step=lambda: asyncio.run(sync_scheduler(run_seconds=0))
    )
    assert renewed.remote_id == first.remote_id and renewed.renewed_at is not None
    [after] = w.api("/v1.0/subscriptions")["value"]
    assert after["id"] == first.remote_id and after["expirationDateTime"] > made["expirationDateTime"]
    row = w.status()
    assert row["change_source"].startswith(f"webhook (subscription {first.remote_id}, expires ")
    [status] = [r for r in connection_status(w.engine, tenant=TENANT) if r["connection"] == w.connection]
    assert status["change_source"] == row["change_source"]

    ids = sorted(w.app_ids())
    w.sim("/_sim/mutate", {"create": 2, "update": ids[:2], "purge": ids[2:4]})  # notifications reach the receiver
    _until(lambda: inbox.depth(w.engine, w.connection) >= 6, "the notifications in the inbox")
    asyncio.run(incremental_import(TENANT, w.connection))
    assert w.app_ids() == w.source()

    pause(w.inst, TENANT, w.connection)
    assert w.tick().deleted == 1 and subscription_of(w.engine, w.connection) is None
    assert w.api("/v1.0/subscriptions")["value"] == []
    assert w.status()["change_source"] == "poll"


def test_a_missed_lifecycle_event_resyncs_the_graph_connection(world: WorldFactory) -> None:
    w = world("msgraph", deliver_every=0)  # webhooks leave only when the test says
    _start(w)
    assert w.tick().created == 1
    ids = sorted(w.app_ids())
    w.sim("/_sim/mutate", {"create": 3, "update": ids[:3], "purge": ids[3:5]})
    lost = w.sim("/_sim/lifecycle", {"event": "missed", "lose_notifications": True})["lost"]
    assert lost == 3  # one delivery per change, which Graph gave up on on the change notifications and says so
    w.sim("/_sim/webhooks/deliver", {})
    row = _until(lambda: (r := subscription_of(w.engine, w.connection)) and r.lifecycle == "missed" and r, "missed")
    assert inbox.depth(w.engine, w.connection) == 0 and w.app_ids() != w.source()

    summary = asyncio.run(sync_scheduler(run_seconds=0))  # the tick turns `missed` into a poll from the last position
    assert summary.resyncs == 1 and summary.polls == 1
    assert asyncio.run(serve_until_final(sync_connection, f"poll/{TENANT}/{w.connection}")) == ["Completed"]
    asyncio.run(incremental_import(TENANT, w.connection))
    assert w.app_ids() == w.source()
    assert subscription_of(w.engine, w.connection).lifecycle is None  # type: ignore[union-attr]
    assert row.remote_id == subscription_of(w.engine, w.connection).remote_id  # type: ignore[union-attr]


def test_reauthorization_renews_and_a_removed_subscription_is_made_again(world: WorldFactory) -> None:
    w = world("msgraph", deliver_every=0)
    _start(w)
    w.tick()
    first = subscription_of(w.engine, w.connection)
    assert first is not None
    w.sim("/_sim/lifecycle", {"event": "reauthorizationRequired"})
    w.sim("/_sim/webhooks/deliver", {})
    _until(lambda: subscription_of(w.engine, w.connection).lifecycle, "reauthorizationRequired kept")  # type: ignore[union-attr]
    assert w.tick().renewed == 1
    w.sim("/_sim/lifecycle", {"event": "subscriptionRemoved"})
    w.sim("/_sim/webhooks/deliver", {})
    _until(lambda: subscription_of(w.engine, w.connection).lifecycle, "subscriptionRemoved kept")  # type: ignore[union-attr]
    tick = w.tick()
    again = subscription_of(w.engine, w.connection)
    assert tick.created == 1 and [d.work for d in tick.resyncs] == ["poll"]
    assert again is not None and again.remote_id != first.remote_id


def test_a_forged_graph_notification_or_lifecycle_event_is_refused(world: WorldFactory) -> None:
    w = world("msgraph", deliver_every=0)
    _start(w)
    w.tick()
    made = subscription_of(w.engine, w.connection)
    assert made is not None and w.receiver is not None
    url = f"{w.receiver}/webhooks/msgraph/{TENANT}/{w.connection}"
    forged = {
        "value": [{"subscriptionId": made.remote_id, "lifecycleEvent": "subscriptionRemoved", "clientState": "x"}]
    }
    change = {
        "value": [{"changeType": "deleted", "resource": "Users/1", "resourceData": {"id": "1"}, "clientState": "x"}]
    }
    for body in (forged, change):
        assert httpx.post(url, json=body, timeout=10).status_code == 401
    assert subscription_of(w.engine, w.connection).lifecycle is None  # type: ignore[union-attr]
    assert inbox.depth(w.engine, w.connection) == 0
    echo = httpx.post(url, params={"validationToken": "a b&c"}, timeout=10)  # the handshake answers, changes nothing
    assert (echo.status_code, echo.text) == (200, "a b&c") and echo.headers["content-type"].startswith("text/plain")


def test_without_a_public_receiver_url_webhooks_are_unavailable_and_the_connection_polls(world: WorldFactory) -> None:
    w = world("msgraph", public=False)
    _start(w)
    assert w.tick().created == 0
    row = subscription_of(w.engine, w.connection)
    assert row is not None and row.state == "unavailable" and row.remote_id is None
    assert w.api("/v1.0/subscriptions")["value"] == []
    assert w.status()["change_source"] == f"poll (webhooks unavailable: {NO_PUBLIC_URL})"


# -- Pipedrive and Zendesk -------------------------------------------------------------------------------------------

_LISTS = {
    "pipedrive": ("/api/v1/webhooks", "data", "subscription_url"),
    "zendesk": ("/api/v2/webhooks", "webhooks", "endpoint"),
}


@pytest.mark.parametrize("app", ["pipedrive", "zendesk"])
def test_webhooks_are_created_and_deleted_with_the_connection_and_bring_changes_to_the_app(
    world: WorldFactory, app: str
) -> None:
    w = world(app)
    path, key, target = _LISTS[app]
    _start(w)
    assert w.tick().created == 1
    [hook] = w.api(path)[key]
    made = subscription_of(w.engine, w.connection)
    assert made is not None and str(hook["id"]) == made.remote_id and made.expires_at is None
    assert hook[target] == f"{w.receiver}/webhooks/{app}/{TENANT}/{w.connection}"
    assert "webhook (subscription" in w.status()["change_source"]

    ids = sorted(w.app_ids())
    w.sim("/_sim/mutate", {"create": 2, "update": ids[:2], "delete": ids[2:3]})
    _until(lambda: inbox.depth(w.engine, w.connection) >= 5, "the webhooks in the inbox")
    asyncio.run(incremental_import(TENANT, w.connection))
    assert w.app_ids() == w.source()
    _refuses_a_forgery(w)

    pause(w.inst, TENANT, w.connection)
    assert w.tick().deleted == 1 and w.api(path)[key] in ([], None)
    resume(w.inst, TENANT, w.connection)
    assert w.tick().created == 1 and len(w.api(path)[key]) == 1
    delete_connection(open_installation(w.settings), TENANT, w.connection)
    assert w.api(path)[key] in ([], None)


def _refuses_a_forgery(w: World) -> None:
    """A delivery with wrong credentials (Pipedrive) or a wrong signature (Zendesk) gets 401 and writes nothing."""
    assert w.receiver is not None
    url = f"{w.receiver}/webhooks/{w.app}/{TENANT}/{w.connection}"
    body: dict[str, Any]
    if w.app == "pipedrive":
        body = {"meta": {"action": "delete", "entity": "person", "entity_id": "1", "id": "forged"}}
        headers = {"Authorization": "Basic " + base64.b64encode(b"inlet:guessed").decode()}
    else:
        body = {"type": "zen:event-type:user.deleted", "id": "forged", "detail": {"id": "1"}}
        headers = {
            "X-Zendesk-Webhook-Signature": "AAAA",
            "X-Zendesk-Webhook-Signature-Timestamp": "2026-12-07T00:00:00Z",
        }
    answer = httpx.post(url, content=orjson.dumps(body), headers={"Content-Type": "application/json", **headers})
    assert answer.status_code == 401 and inbox.depth(w.engine, w.connection) == 0
