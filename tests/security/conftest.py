"""A webhook receiver over a real store (SQLite here, PostgreSQL too where a test asks for `engine`), with
HubSpot, Zendesk, Graph and Pipedrive connections of tenant acme and a clock the tests move."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, text

from inlet.receiver import create_receiver
from inlet.store import Vault, add_connection, add_tenant, inbox, open_store
from tests.security.deliveries import Delivery

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
