"""A webhook receiver over a real store (SQLite here, PostgreSQL too where a test asks for `engine`), with
HubSpot, Zendesk, Graph and Pipedrive connections of tenant acme and a clock the tests move.

Also, for the connector-side tests: a loopback server that records every request it gets, and an
installation (egress policy) that allows nothing beyond public addresses."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, text

from connectors.egress import EgressPolicy
from inlet.receiver import create_receiver
from inlet.store import Vault, add_connection, add_tenant, inbox, open_store
from tests.security.deliveries import Delivery
from tests.support.serving import serve_in_thread

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient prefers the httpx2 fork; plain httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = 1_800_000_000.0
HUBSPOT_SECRET, ZENDESK_SECRET = "hubspot-app-secret-5f1c", "zendesk-signing-secret-77"
GRAPH_STATE, PIPEDRIVE_BASIC = "graph-client-state-1b2c", "inlet:pipedrive-hook-password-3d"
HUBSPOT, ZENDESK = "/webhooks/hubspot/acme/acme-hubspot", "/webhooks/zendesk/acme/acme-zendesk"
GRAPH, PIPEDRIVE = "/webhooks/msgraph/acme/acme-graph", "/webhooks/pipedrive/acme/acme-pipedrive"
CONNECTIONS = {
    "acme-hubspot": ("hubspot", HUBSPOT_SECRET, {}),
    "acme-zendesk": ("zendesk", ZENDESK_SECRET, {"base_url": "https://acme.zendesk.com"}),
    "acme-graph": ("msgraph", GRAPH_STATE, {}),
    "acme-pipedrive": ("pipedrive", PIPEDRIVE_BASIC, {}),
}


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Hub:
    """The receiver in this process (`post`), its store, its clock and what it told the flows."""

    client: TestClient
    engine: Engine
    clock: Clock
    heard: list[tuple[str, str]] = field(default_factory=list)

    def post(self, delivery: Delivery) -> httpx.Response:
        response: httpx.Response = self.client.post(
            delivery.path, content=delivery.body, headers=list(delivery.headers)
        )
        return response

    def inbox(self, connection: str) -> list[tuple[str, str]]:
        return [(row.kind, row.external_id) for row in inbox.pending(self.engine, connection, 1000)]

    def receipts(self) -> int:
        with self.engine.connect() as db:
            return int(db.execute(text("SELECT count(*) FROM webhook_receipt")).scalar_one())


def seed(engine: Engine) -> Vault:
    """Tenant acme and its four connections with webhooks; the vault that seals their secrets."""
    vault = Vault(SecretStr(Fernet.generate_key().decode()))
    add_tenant(engine, "acme")
    for connection, (app, secret, parameters) in CONNECTIONS.items():
        add_connection(
            engine, vault, tenant_id="acme", connection_id=connection, app=app, parameters=parameters,
            credentials={"token": SecretStr("tok-test"), "api_token": SecretStr("tok-test"),
                         "username": SecretStr("agent@acme.test"), "webhook_secret": SecretStr(secret)},
        )  # fmt: skip
    return vault


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite store in a new file."""
    engine = open_store(f"sqlite:///{tmp_path / 'inlet.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def either_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated store on each backend (a new PostgreSQL database for each test)."""
    sqlite = f"sqlite:///{tmp_path / 'inlet.db'}"
    engine = open_store(sqlite if request.param == "sqlite" else request.getfixturevalue("pg_databases")())
    yield engine
    engine.dispose()


@pytest.fixture
def hub(store: Engine) -> Iterator[Hub]:
    vault, clock = seed(store), Clock()
    heard: list[tuple[str, str]] = []
    app = create_receiver(store, vault, lambda t, c: heard.append((t, c)), clock=clock)
    with TestClient(app) as client:
        yield Hub(client, store, clock, heard)


STRICT = EgressPolicy()  # an installation that allow-lists nothing

Reply = Callable[["Seen", str], tuple[int, Any, dict[str, str]]]


def recording(sent: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    """A stand-in network that keeps every request in `sent` and answers `status` with an empty JSON object."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, json={})

    return httpx.MockTransport(answer)


@dataclass(frozen=True)
class Seen:
    """One request a Recorder received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def carries(self, secret: str) -> bool:
        """True when the secret is anywhere in the request: path, query, a header or the body."""
        text = " ".join([self.path, self.query, *self.headers.values()]) + self.body.decode(errors="replace")
        return secret in text


@dataclass
class Recorder:
    """An ASGI app that keeps every request and answers with `reply(seen, own_url)` (default: `{"data": []}`)."""

    reply: Reply | None = None
    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        seen = Seen(scope["method"], scope["path"], scope["query_string"].decode(), headers, body)
        self.seen.append(seen)
        status, payload, extra = self.reply(seen, self.url) if self.reply else (200, {"data": []}, {})
        content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        raw = [(b"content-type", b"application/json"), *((k.encode(), v.encode()) for k, v in extra.items())]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})


@pytest.fixture
def recorders() -> Iterator[Callable[..., Recorder]]:
    """`start(reply=None)`: a Recorder served over real HTTP on 127.0.0.1 (its URL in `.url`) for the test."""
    stops: list[Any] = []

    def start(reply: Reply | None = None) -> Recorder:
        recorder = Recorder(reply)
        served = serve_in_thread(recorder)
        recorder.url = served.__enter__()
        stops.append(served)
        return recorder

    yield start
    for served in reversed(stops):
        served.__exit__(None, None, None)
