"""The webhook receiver: verified changes reach the inbox before the answer; nothing else is kept."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient prefers the httpx2 fork; plain httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from connectors.base import Hooks
from connectors.webhooks import WebhookRequest
from inlet.local import free_port, local_client, start_process, stop_process
from inlet.receiver import app as receiver
from inlet.receiver import create_receiver
from inlet.store import Vault, add_connection, add_tenant, inbox, open_store

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
SECRET, GLOBEX_SECRET, GRAPH_STATE = "hubspot-app-secret-5f1c", "globex-app-secret-88ad", "graph-client-state-1b2c"
PORTAL, GLOBEX_PORTAL = 62515, 99
ACME = "/webhooks/hubspot/acme/acme-hubspot"
GRAPH = "/webhooks/msgraph/acme/acme-graph"
MAX_BODY = 10_000


@dataclass
class Receiver:
    client: TestClient
    engine: Engine
    vault: Vault
    heard: list[tuple[str, str]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Engine, Vault]]:
    """Tenants acme and globex with HubSpot connections (each its own portal and secret) and acme's Graph."""
    engine = open_store(f"sqlite:///{tmp_path / 'inlet.db'}")
    vault = Vault(SecretStr(Fernet.generate_key().decode()))
    for tenant, secret, portal in (("acme", SECRET, PORTAL), ("globex", GLOBEX_SECRET, GLOBEX_PORTAL)):
        add_tenant(engine, tenant)
        connect(engine, vault, tenant, f"{tenant}-hubspot", "hubspot", secret, webhook_account=str(portal))
    connect(engine, vault, "acme", "acme-graph", "msgraph", GRAPH_STATE)
    yield engine, vault
    engine.dispose()


@pytest.fixture
def hub(store: tuple[Engine, Vault]) -> Iterator[Receiver]:
    engine, vault = store
    heard: list[tuple[str, str]] = []
    app = create_receiver(
        engine, vault, lambda tenant, connection: heard.append((tenant, connection)), max_body_bytes=MAX_BODY,
        clock=lambda: NOW,
    )  # fmt: skip
    with TestClient(app) as client:
        yield Receiver(client, engine, vault, heard)


def connect(
    engine: Engine, vault: Vault, tenant: str, connection: str, app: str, secret: str | None, **params: str
) -> None:
    credentials = {"token": SecretStr("pat-test")} | ({"webhook_secret": SecretStr(secret)} if secret else {})
    add_connection(
        engine, vault, tenant_id=tenant, connection_id=connection, app=app, parameters=params, credentials=credentials
    )


def contacts(*ids: int, kind: str = "contact.creation", portal: int = PORTAL, first_event: int = 100) -> bytes:
    """A HubSpot delivery: one event per contact id."""
    return orjson.dumps(
        [
            {"eventId": first_event + n, "subscriptionType": kind, "portalId": portal, "objectId": contact,
             "occurredAt": 1_799_999_990_000 + n}
            for n, contact in enumerate(ids)
        ]
    )  # fmt: skip


def hubspot_v3(body: bytes, path: str = ACME, secret: str = SECRET, at: float = NOW) -> dict[str, str]:
    """The headers HubSpot signs a v3 delivery with: base64 HMAC-SHA256 of method + URL + body + timestamp."""
    timestamp = str(int(at * 1000))
    message = b"POST" + f"http://testserver{path}".encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}


def post(hub: Receiver, body: bytes, headers: dict[str, str] | None = None, path: str = ACME) -> httpx.Response:
    response: httpx.Response = hub.client.post(
        path, content=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    return response


def inbox_of(hub: Receiver, connection: str = "acme-hubspot") -> list[tuple[str, str]]:
    return [(row.kind, row.external_id) for row in inbox.pending(hub.engine, connection, 100)]


def graph_notification(state: str, *users: str) -> bytes:
    return orjson.dumps(
        {"value": [{"id": f"n{u}", "changeType": "updated", "resource": f"Users/{u}", "resourceData": {"id": u},
                    "clientState": state} for u in users]}
    )  # fmt: skip


# -- HubSpot, signed -----------------------------------------------------------------------------


def test_a_signed_delivery_is_in_the_inbox_when_answered(hub: Receiver) -> None:
    body = contacts(1001, 1002)
    deleted = contacts(1003, kind="contact.deletion", first_event=200)
    assert post(hub, body, hubspot_v3(body)).json() == {"accepted": 2, "duplicates": 0}
    assert post(hub, deleted, hubspot_v3(deleted)).json() == {"accepted": 1, "duplicates": 0}
    assert inbox_of(hub) == [("upsert", "1001"), ("upsert", "1002"), ("deleted", "1003")]
    assert hub.heard == [("acme", "acme-hubspot")] * 2


def test_the_same_delivery_again_is_refused_as_a_replay(hub: Receiver) -> None:
    body = contacts(1001, 1002)
    headers = hubspot_v3(body)
    assert post(hub, body, headers).status_code == 200
    replay = post(hub, body, headers)
    assert (replay.status_code, replay.json()) == (401, {"error": "replayed"})
    assert len(inbox_of(hub)) == 2 and len(hub.heard) == 1


def test_the_same_body_signed_afresh_is_a_replay_too(hub: Receiver) -> None:
    """The replay identity is the body and the event ids, never the headers (issue 16): an app's own retry of
    a delivery already taken is refused as well, which costs nothing, its events are in the inbox."""
    body = contacts(1001, 1002)
    post(hub, body, hubspot_v3(body))
    retry = post(hub, body, hubspot_v3(body, at=NOW + 1))
    assert (retry.status_code, retry.json()) == (401, {"error": "replayed"})
    assert len(inbox_of(hub)) == 2 and len(hub.heard) == 1


def test_a_new_delivery_repeating_known_events_counts_them_as_duplicates(hub: Receiver) -> None:
    post(hub, contacts(1001, 1002), hubspot_v3(contacts(1001, 1002)))
    regrouped = contacts(1001, 1002, 1003)  # event ids 100, 101 again, and a new 102
    answer = post(hub, regrouped, hubspot_v3(regrouped, at=NOW + 1))
    assert (answer.status_code, answer.json()) == (200, {"accepted": 1, "duplicates": 2})
    assert len(inbox_of(hub)) == 3 and len(hub.heard) == 2


def forged(body: bytes) -> dict[str, str]:
    return {**hubspot_v3(body), "X-HubSpot-Signature-v3": base64.b64encode(b"x" * 32).decode()}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (forged, "does not match"),
        (lambda body: hubspot_v3(body, secret=GLOBEX_SECRET), "does not match"),
        (lambda body: hubspot_v3(body, at=NOW - 301), "more than five minutes old"),
        (lambda body: {}, "no X-HubSpot-Signature"),
    ],
    ids=["forged", "wrong-secret", "stale", "unsigned"],
)
def test_a_bad_signature_gets_401_and_changes_nothing(hub: Receiver, headers: Any, reason: str) -> None:
    body = contacts(1001)
    response = post(hub, body, headers(body))
    assert response.status_code == 401 and reason in response.json()["error"]
    assert inbox_of(hub) == [] and hub.heard == []


def test_rejections_log_no_secret_signature_or_body(hub: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    body = contacts(4242)
    headers = hubspot_v3(body, secret=GLOBEX_SECRET)
    with caplog.at_level(logging.INFO, logger="inlet"):
        post(hub, body, headers)
        post(hub, b"not json", hubspot_v3(b"not json"))
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    for secret in (SECRET, GLOBEX_SECRET, headers["X-HubSpot-Signature-v3"], "4242", "not json"):
        assert secret not in caplog.text


def test_a_connection_without_a_webhook_secret_gets_401_naming_it(hub: Receiver) -> None:
    connect(hub.engine, hub.vault, "acme", "acme-unsigned", "hubspot", None)
    body, path = contacts(1001), "/webhooks/hubspot/acme/acme-unsigned"
    response = post(hub, body, hubspot_v3(body, path), path)
    assert response.status_code == 401 and "webhook_secret" in response.json()["error"]


# -- routing -------------------------------------------------------------------------------------


def test_the_app_route_finds_the_connection_by_portal_id(hub: Receiver) -> None:
    acme, globex = contacts(1001), contacts(2001, portal=GLOBEX_PORTAL)
    route = "/webhooks/hubspot"
    assert post(hub, acme, hubspot_v3(acme, route), route).json()["accepted"] == 1
    assert post(hub, globex, hubspot_v3(globex, route, GLOBEX_SECRET), route).json()["accepted"] == 1
    assert inbox_of(hub) == [("upsert", "1001")] and inbox_of(hub, "globex-hubspot") == [("upsert", "2001")]
    assert hub.heard == [("acme", "acme-hubspot"), ("globex", "globex-hubspot")]


def test_the_app_route_refuses_a_portal_no_connection_names(hub: Receiver) -> None:
    body = contacts(1001, portal=7)
    response = post(hub, body, hubspot_v3(body, "/webhooks/hubspot"), "/webhooks/hubspot")
    assert response.status_code == 404 and "webhook_account='7'" in response.json()["error"]


def test_an_app_without_an_account_hook_is_routed_only_to_its_one_connection(hub: Receiver) -> None:
    body = graph_notification(GRAPH_STATE, "u1")
    assert post(hub, body, path="/webhooks/msgraph").json()["accepted"] == 1
    connect(hub.engine, hub.vault, "globex", "globex-graph", "msgraph", GRAPH_STATE)
    response = post(hub, graph_notification(GRAPH_STATE, "u2"), path="/webhooks/msgraph")
    assert response.status_code == 404 and "/webhooks/msgraph/{tenant}/{connection}" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/webhooks/nosuchapp/acme/acme-hubspot", "nosuchapp has no webhooks"),
        ("/webhooks/kinto/acme/acme-kinto", "kinto has no webhooks"),
        ("/webhooks/hubspot/nobody/acme-hubspot", "no hubspot connection"),
        ("/webhooks/hubspot/acme/acme-nothing", "no hubspot connection"),
        ("/webhooks/hubspot/acme/globex-hubspot", "no hubspot connection"),  # another tenant's connection
        ("/webhooks/msgraph/acme/acme-hubspot", "no msgraph connection"),  # a connection of another app
    ],
)
def test_an_unknown_route_gets_404(hub: Receiver, path: str, error: str) -> None:
    body = contacts(1001)
    response = post(hub, body, hubspot_v3(body, path), path)
    assert response.status_code == 404 and error in response.json()["error"]
    assert inbox.depth(hub.engine) == 0


# -- Microsoft Graph -----------------------------------------------------------------------------


def test_the_graph_handshake_echoes_the_token_and_writes_nothing(hub: Receiver) -> None:
    response = hub.client.post(GRAPH + "?validationToken=Validation%3A%20Testing%20client%20reachability")
    assert (response.status_code, response.text) == (200, "Validation: Testing client reachability")
    assert response.headers["content-type"].startswith("text/plain")
    assert inbox.depth(hub.engine) == 0 and hub.heard == []


def test_a_graph_notification_needs_the_subscription_client_state(hub: Receiver) -> None:
    assert post(hub, graph_notification(GRAPH_STATE, "u1", "u2"), path=GRAPH).json()["accepted"] == 2
    refused = post(hub, graph_notification("guess", "u3"), path=GRAPH)
    assert refused.status_code == 401 and "clientState" in refused.json()["error"]
    assert inbox_of(hub, "acme-graph") == [("upsert", "u1"), ("upsert", "u2")]


# -- bodies --------------------------------------------------------------------------------------


def chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 1000):
        yield b" " * 1000


@pytest.mark.parametrize("content", [b" " * (MAX_BODY + 1), chunks(MAX_BODY + 1000)], ids=["sized", "streamed"])
def test_a_body_over_the_cap_gets_413(hub: Receiver, content: Any) -> None:
    response = hub.client.post(ACME, content=content, headers=hubspot_v3(b""))
    assert response.status_code == 413 and str(MAX_BODY) in response.json()["error"]


def test_an_empty_body_gets_400(hub: Receiver) -> None:
    response = post(hub, b"", hubspot_v3(b""))
    assert (response.status_code, response.json()) == (400, {"error": "the webhook body is empty"})


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [(ACME, b"not json", 401), (GRAPH, b"not json", 401), (ACME, b'{"not": "an array"}', 401)],
)
def test_a_body_a_hook_rejects_gets_its_status(hub: Receiver, path: str, body: bytes, status: int) -> None:
    assert post(hub, body, hubspot_v3(body, path), path).status_code == status
    assert inbox.depth(hub.engine) == 0


def test_a_payload_of_the_wrong_shape_gets_400(hub: Receiver) -> None:
    body = orjson.dumps([{"eventId": 1, "subscriptionType": "contact.merge", "newObjectId": 5, "mergedObjectIds": 7}])
    response = post(hub, body, hubspot_v3(body))
    assert response.status_code == 400 and response.json()["error"].startswith("not a hubspot webhook payload")
    assert inbox.depth(hub.engine) == 0


def test_a_hook_returning_something_else_than_events_gets_400(hub: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = Hooks(verify_webhook=lambda request, secret, now: None, parse_webhook=lambda request: ["1001"])  # type: ignore[list-item]
    monkeypatch.setattr(receiver, "load", lambda app: (None, hooks))
    response = post(hub, b"[]")
    assert response.status_code == 400 and "not a hubspot webhook payload" in response.json()["error"]


def test_a_delivery_about_other_objects_is_accepted_with_no_events(hub: Receiver) -> None:
    body = contacts(9, kind="company.creation")
    assert post(hub, body, hubspot_v3(body)).json() == {"accepted": 0, "duplicates": 0}
    assert hub.heard == []


# -- failures ------------------------------------------------------------------------------------


def test_a_store_failure_gets_503_and_keeps_nothing(hub: Receiver) -> None:
    with hub.engine.begin() as db:
        db.execute(text("DROP TABLE inbox"))
    body = contacts(1001)
    response = post(hub, body, hubspot_v3(body))
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    with hub.engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM webhook_receipt")).scalar_one() == 0
    assert hub.heard == []


def test_a_delivery_refused_with_503_is_taken_when_the_app_retries(
    hub: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> int:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    body, headers = contacts(1001), hubspot_v3(contacts(1001))
    monkeypatch.setattr(inbox, "receive", down)
    assert post(hub, body, headers).status_code == 503
    monkeypatch.undo()
    assert post(hub, body, headers).json() == {"accepted": 1, "duplicates": 0}


def test_an_unexpected_failure_is_never_acknowledged(hub: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(inbox, "receive", bug)
    body = contacts(1001)
    response = post(hub, body, hubspot_v3(body))
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")


def test_a_failed_notification_still_acknowledges_what_the_inbox_holds(store: tuple[Engine, Vault]) -> None:
    def broken(tenant: str, connection: str) -> None:
        raise RuntimeError("no Prefect")

    with TestClient(create_receiver(*store, broken, clock=lambda: NOW)) as client:
        body = contacts(1001)
        assert client.post(ACME, content=body, headers=hubspot_v3(body)).status_code == 200
    assert inbox.depth(store[0], "acme-hubspot") == 1


def test_the_receipt_ignores_every_header(hub: Receiver) -> None:
    body = contacts(1001)
    assert post(hub, body, hubspot_v3(body)).status_code == 200
    for extra in ({"X-Replay-Signature": "1"}, {"X-HubSpot-Request-Timestamp-2": "1"}, {"Authorization": "Basic a"}):
        assert post(hub, body, {**hubspot_v3(body), **extra}).json() == {"error": "replayed"}


def test_health(hub: Receiver) -> None:
    assert hub.client.get("/health").json() == {"ok": True}


def test_the_webhook_request_holds_the_url_and_raw_body(hub: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[WebhookRequest] = []
    hooks = Hooks(verify_webhook=lambda request, secret, now: seen.append(request), parse_webhook=lambda r: [])
    monkeypatch.setattr(receiver, "load", lambda app: (None, hooks))
    hub.client.post(ACME + "?a=%2F", content=b" [ ] ", headers={"X-Sig": "1", "x-sig": "2"})
    assert seen[0].url == "http://testserver" + ACME + "?a=%2F" and seen[0].body == b" [ ] "
    assert seen[0].headers.get_list("x-sig") == ["1", "2"]


# -- inlet serve ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_inlet_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "INLET_HOME": str(tmp_path / "home"),
        "INLET_PREFECT_PORT": str(free_port()),  # no Prefect server there: nothing else is reached
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PREFECT_API_URL", None)
    subprocess.run([sys.executable, "-m", "inlet.cli", "init"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    command = [sys.executable, "-m", "inlet.cli", "serve", "--port", str(port)]
    proc = start_process(command, f"http://127.0.0.1:{port}/health", cwd=ROOT, env=env, log_path=tmp_path / "serve.log")
    try:
        with local_client() as client:
            assert client.post(f"http://127.0.0.1:{port}/webhooks/kinto", content=b"{}").status_code == 404
    finally:
        stop_process(proc)
    assert proc.returncode == 0
    log = (tmp_path / "serve.log").read_text()
    assert "webhooks are kept in each connection's inbox" in log and "temporary" not in log
