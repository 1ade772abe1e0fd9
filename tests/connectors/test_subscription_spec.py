"""`subscriptions:` in connector.yaml: validated when loaded, its templates filled with known values only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr, ValidationError

from connectors.errors import ConnectorError
from connectors.registry import load, open_connector
from connectors.subscriber import subscribe
from connectors.subscriptions import SubscriptionSpec, fill

_NOW = datetime(2026, 12, 7, tzinfo=UTC)
_URL = "https://hooks.example/webhooks/app/a/b"

_CALLS: dict[str, Any] = {
    "create": {"method": "POST", "path": "/hooks", "json": {"url": "{notification_url}"}, "id_path": "id"},
    "delete": {"method": "DELETE", "path": "/hooks/{subscription_id}"},
}


def test_graph_pipedrive_and_zendesk_declare_subscriptions_and_the_others_poll() -> None:
    declared = {name for name in ("msgraph", "pipedrive", "zendesk", "hubspot", "kinto") if load(name)[0].subscriptions}
    assert declared == {"msgraph", "pipedrive", "zendesk"}


def test_an_unknown_placeholder_is_refused_when_the_spec_loads() -> None:
    with pytest.raises(ValidationError, match="unknown placeholders"):
        SubscriptionSpec.model_validate({**_CALLS, "delete": {"method": "DELETE", "path": "/hooks/{token}"}})


def test_a_lifetime_without_renew_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs `renew:`"):
        SubscriptionSpec.model_validate({**_CALLS, "lifetime_seconds": 60})


def test_fill_replaces_known_fields_in_nested_bodies_and_leaves_other_braces() -> None:
    body = {"a": ["{secret}", {"{connection}": "x {tenant} {other}"}], "n": 3}
    filled = fill(body, {"secret": "s", "connection": "c", "tenant": "t"})
    assert filled == {"a": ["s", {"c": "x t {other}"}], "n": 3}


def test_an_app_error_echoing_the_body_never_shows_the_secret() -> None:
    sent: list[bytes] = []

    def graph(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(400, json={"error": {"code": "InvalidRequest", "message": request.content.decode()}})

    connector = open_connector(
        "msgraph", credentials={"token": SecretStr("t" * 20)}, transport=httpx.MockTransport(graph)
    )
    with pytest.raises(ConnectorError) as raised:
        asyncio.run(subscribe(connector, notification_url=_URL, tenant="a", connection="b", now=_NOW))
    secret = orjson.loads(sent[0])["clientState"]
    assert len(secret) > 20 and secret not in str(raised.value) and "InvalidRequest" in str(raised.value)


def test_subscribe_reads_the_id_expiry_and_the_signing_secret_the_app_chose() -> None:
    def zendesk(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"webhook": {"id": "01H1", **orjson.loads(request.content)["webhook"]}})
        assert request.url.path == "/api/v2/webhooks/01H1/signing_secret"
        return httpx.Response(200, json={"signing_secret": {"algorithm": "SHA256", "secret": "chosen-by-zendesk"}})

    connector = open_connector(
        "zendesk",
        parameters={"base_url": "https://acme.zendesk.com"},
        credentials={"username": SecretStr("a@b.c/token"), "api_token": SecretStr("x" * 20)},
        transport=httpx.MockTransport(zendesk),
    )
    made = asyncio.run(subscribe(connector, notification_url=_URL, tenant="a", connection="b", now=_NOW))
    assert (made.id, made.expires_at, made.secret.get_secret_value()) == ("01H1", None, "chosen-by-zendesk")
