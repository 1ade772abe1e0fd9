"""Accepting pushes: signed like inlet's deliveries and verified on the raw bytes, durable before the answer,
to one connection or to every connection of the tenant for the data source."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from inlet.api import create_api
from inlet.delivery.signing import generate_secret, sign_headers
from inlet.errors import ConfigError, NotFound, SignatureError
from inlet.push import PushRequest
from inlet.service import Installation, accept_push, accept_signed_push, open_installation
from inlet.settings import DestinationSettings, Settings
from inlet.store import add_connection, add_tenant, ensure_key_file, pending_pushes

_SECRET = generate_secret()


@pytest.fixture
def inst(tmp_path: Path) -> Installation:
    settings = Settings(
        home=tmp_path, destination=DestinationSettings(url="http://127.0.0.1:9", secret=SecretStr(_SECRET))
    )
    ensure_key_file(tmp_path / "secret.key")
    inst = open_installation(settings)
    add_tenant(inst.engine, "acme")
    add_tenant(inst.engine, "other")
    for connection, app in (("acme-json", "json_server"), ("acme-kinto", "kinto")):
        add_connection(
            inst.engine,
            inst.vault,
            tenant_id="acme",
            connection_id=connection,
            app=app,
            parameters={"base_url": "http://127.0.0.1:9"},
            credentials={},
        )
    return inst


def _body(**fields: object) -> bytes:
    document = {
        "tenant": "acme",
        "connection": "acme-json",
        "data_source": "users",
        "changes": [{"app_id": "u1", "type": "created", "record": {"email": "ada@x.org"}}],
    }
    return orjson.dumps({**document, **fields})


def _signed(body: bytes, secret: str = _SECRET, at: int | None = None, msg: str = "msg_1") -> dict[str, str]:
    return sign_headers([secret], msg_id=msg, timestamp=at or int(time.time()), body=body)


def test_a_signed_push_is_durable_and_a_resend_is_dropped(inst: Installation) -> None:
    body = _body()
    first = accept_signed_push(inst, body, _signed(body))
    again = accept_signed_push(inst, body, _signed(body))
    assert (first.queued, first.duplicates, again.queued, again.duplicates) == (1, 0, 0, 1)
    (row,) = pending_pushes(inst.engine, "acme-json", 10)
    assert (row.app_id, row.type, orjson.loads(row.record or "")) == ("u1", "created", {"email": "ada@x.org"})


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body: (body.replace(b"ada", b"eve"), _signed(body)),  # the body changed after signing
        lambda body: (body, _signed(body, secret=generate_secret())),  # signed with another secret
        lambda body: (body, _signed(body, at=int(time.time()) - 3600)),  # stale
        lambda body: (body, {}),  # unsigned
    ],
)
def test_a_forged_or_stale_push_is_refused_and_keeps_nothing(inst: Installation, tamper: object) -> None:
    body, headers = tamper(_body())  # type: ignore[operator]
    with pytest.raises(SignatureError):
        accept_signed_push(inst, body, headers)
    assert pending_pushes(inst.engine, "acme-json", 10) == []


def test_a_push_without_a_connection_goes_to_every_connection_for_the_data_source(inst: Installation) -> None:
    request = PushRequest.model_validate(orjson.loads(_body(connection=None)))
    accepted = accept_push(inst, request)
    assert accepted.connections == ["acme-json", "acme-kinto"] and accepted.queued == 2


def test_a_push_to_another_tenants_connection_is_not_found(inst: Installation) -> None:
    request = PushRequest.model_validate(orjson.loads(_body(tenant="other")))
    with pytest.raises(NotFound):
        accept_push(inst, request)


def test_a_signed_but_malformed_push_is_refused(inst: Installation) -> None:
    body = _body(changes=[{"app_id": "u1", "type": "updated"}])
    with pytest.raises(ConfigError, match="record"):
        accept_signed_push(inst, body, _signed(body))


def test_the_api_answers_202_once_durable_and_401_when_forged(inst: Installation) -> None:
    body = _body()

    async def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=create_api(inst))
        async with httpx.AsyncClient(transport=transport, base_url="http://inlet") as client:
            return await client.post("/push/signed", content=content, headers=headers)

    ok = asyncio.run(post(body, _signed(body, msg="msg_api")))
    forged = asyncio.run(post(body.replace(b"ada", b"eve"), _signed(body, msg="msg_2")))
    assert ok.status_code == 202 and ok.json()["queued"] == 1
    assert forged.status_code == 401
    assert len(pending_pushes(inst.engine, "acme-json", 10)) == 1
