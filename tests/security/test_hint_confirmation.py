"""`confirm_hint`: a webhook's deletion stands only when the app agrees; read against each app's own answers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors import confirm_hint, open_connector

ZENDESK = {"base_url": "https://acme.zendesk.com"}
ZENDESK_KEYS = {"username": SecretStr("agent@acme.test"), "api_token": SecretStr("zd-token-1")}


def _confirm(app: str, parameters: dict[str, str], answer: httpx.Response, kind: str, external_id: str) -> Any:
    async def run() -> Any:
        transport = httpx.MockTransport(lambda request: answer)
        credentials = ZENDESK_KEYS if app == "zendesk" else {"token": SecretStr("tok-1")}
        async with open_connector(app, parameters=parameters, credentials=credentials, transport=transport) as c:
            collection = next(iter(c.spec.collections))
            return await confirm_hint(c, collection, kind, external_id)

    return asyncio.run(run())


@pytest.mark.parametrize("status", [404, 410])
def test_a_deletion_the_app_answers_404_or_410_for_stands(status: int) -> None:
    assert _confirm("hubspot", {}, httpx.Response(status, json={"status": "error"}), "deleted", "42") is None


def test_a_deletion_of_a_record_the_app_still_has_becomes_an_update() -> None:
    record = {"id": "42", "properties": {"email": "ada@example.com"}}
    assert _confirm("hubspot", {}, httpx.Response(200, json=record), "deleted", "42") == record


def test_a_deletion_answered_with_another_record_stands() -> None:
    """HubSpot answers the id of a merged contact with the contact it went into."""
    merged_into = {"id": "77", "properties": {}}
    assert _confirm("hubspot", {}, httpx.Response(200, json=merged_into), "deleted", "42") is None


def test_a_deletion_of_a_record_marked_deleted_stands() -> None:
    """Zendesk keeps a soft-deleted user readable with active: false (the collection's `deleted` rule)."""
    soft = httpx.Response(200, json={"user": {"id": 42, "active": False}})
    live = httpx.Response(200, json={"user": {"id": 42, "active": True}})
    assert _confirm("zendesk", ZENDESK, soft, "deleted", "42") is None
    assert _confirm("zendesk", ZENDESK, live, "deleted", "42") == {"id": 42, "active": True}


def test_an_upsert_hint_is_the_record_as_fetched() -> None:
    assert _confirm("hubspot", {}, httpx.Response(404), "upsert", "42") is None
    assert _confirm("hubspot", {}, httpx.Response(200, json={"id": "42"}), "upsert", "42") == {"id": "42"}
