"""Writes to the real apps (issue 20): Kinto and json-server, over loopback, with the connectors' `writes:`.

Each write is read back through the app's own API, and through the connector's change feed where the app has
one (Kinto's `_since`), so a write shows up like any other change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bench.real_apps import JsonServer
from connectors import (
    Connector,
    WriteConflict,
    WriteOp,
    WriteRejected,
    find_existing,
    open_connector,
    pull_changes,
    write,
)
from connectors.egress import EgressPolicy
from tests.integration.conftest import JsonServerFactory
from tests.support.real_apps import KintoServer

pytestmark = pytest.mark.real_app

LOOPBACK = EgressPolicy(allow_hosts=frozenset({"127.0.0.1"}))


@pytest.fixture
async def kinto(kinto_collection: KintoServer) -> AsyncIterator[Connector]:
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    creds = {"username": SecretStr("admin"), "password": SecretStr("s3cret")}
    async with open_connector("kinto", parameters=params, credentials=creds, egress=LOOPBACK) as connector:
        yield connector


async def test_kinto_create_update_delete_round_trip_shows_in_its_change_feed(
    kinto: Connector, kinto_collection: KintoServer
) -> None:
    before = await pull_changes(kinto, "records")
    fields = {"email": "ada@example.org", "name": "Ada", "last_modified": 1}  # last_modified: not writable
    created = await write(kinto, WriteOp("create", "records", None, fields, "k-1"))
    assert created.dropped == ("last_modified",)
    stored = await kinto.get("records", created.external_id)
    assert stored is not None and stored["email"] == "ada@example.org" and stored["name"] == "Ada"
    assert created.etag == str(stored["last_modified"]) and created.modified_at is not None

    updated = await write(
        kinto, WriteOp("update", "records", created.external_id, {"name": "Ada L."}, "k-2", etag=created.etag)
    )
    assert updated.etag is not None and int(updated.etag) > int(created.etag or 0)
    stored = await kinto.get("records", created.external_id)
    assert stored is not None and stored["name"] == "Ada L." and stored["email"] == "ada@example.org"

    changes = await pull_changes(kinto, "records", before.since)
    assert [(c.kind, c.external_id) for c in changes.changes] == [("upsert", created.external_id)]

    await write(kinto, WriteOp("delete", "records", created.external_id, {}, "k-3"))
    assert await kinto.get("records", created.external_id) is None
    after = await pull_changes(kinto, "records", changes.since)
    assert [(c.kind, c.external_id) for c in after.changes] == [("deleted", created.external_id)]
    # deleting what is gone already is done, not an error
    again = await write(kinto, WriteOp("delete", "records", created.external_id, {}, "k-4"))
    assert again.external_id == created.external_id


async def test_kinto_stale_etag_is_a_conflict_and_changes_nothing(
    kinto: Connector, kinto_collection: KintoServer
) -> None:
    record = kinto_collection.create({"email": "grace@example.org", "name": "Grace"})
    stale = str(record["last_modified"])
    kinto_collection.update(record["id"], {"name": "Grace H."})  # someone else writes first
    with pytest.raises(WriteConflict, match="412"):
        await write(kinto, WriteOp("update", "records", record["id"], {"name": "Mine"}, "k-5", etag=stale))
    stored = await kinto.get("records", record["id"])
    assert stored is not None and stored["name"] == "Grace H."


async def test_kinto_validation_error_is_write_rejected_with_its_message(
    kinto: Connector, kinto_collection: KintoServer
) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["email"]}
    with kinto_collection.client() as c:
        c.patch(kinto_collection.collection_url, json={"data": {"schema": schema}}).raise_for_status()
    with pytest.raises(WriteRejected) as info:
        await write(kinto, WriteOp("create", "records", None, {"name": "No Email", "age": "old"}, "k-6"))
    assert info.value.status == 400 and info.value.app_message
    assert kinto_collection.list_all() == []


async def test_kinto_find_existing_finds_the_record_a_lost_create_made(
    kinto: Connector, kinto_collection: KintoServer
) -> None:
    made = kinto_collection.create({"email": "lost@example.org", "name": "Lost"})
    assert await find_existing(kinto, "records", {"email": "lost@example.org"}) == made["id"]
    assert await find_existing(kinto, "records", {"email": "nobody@example.org"}) is None
    assert await find_existing(kinto, "records", {"name": "no email to look up by"}) is None


@pytest.fixture
async def json_server(json_server_factory: JsonServerFactory) -> AsyncIterator[tuple[JsonServer, Connector]]:
    server = json_server_factory(3)
    params = {"base_url": server.base_url}
    async with open_connector("json_server", parameters=params, egress=LOOPBACK) as connector:
        yield server, connector


async def test_json_server_create_update_delete_round_trip(json_server: tuple[JsonServer, Connector]) -> None:
    server, connector = json_server
    created = await write(connector, WriteOp("create", "users", None, {"email": "k@example.org", "name": "K"}, "j-1"))
    with server.client() as c:
        stored = c.get(f"/users/{created.external_id}").json()
    assert stored["email"] == "k@example.org" and stored["name"] == "K"
    assert isinstance(stored["updatedAt"], int) and created.modified_at is not None  # stamped by the write

    updated = await write(connector, WriteOp("update", "users", created.external_id, {"name": "Kay"}, "j-2"))
    with server.client() as c:
        stored_after = c.get(f"/users/{created.external_id}").json()
    assert stored_after["name"] == "Kay" and stored_after["email"] == "k@example.org"
    assert stored_after["updatedAt"] >= stored["updatedAt"] and updated.record is not None

    assert await find_existing(connector, "users", {"email": "k@example.org"}) == created.external_id
    await write(connector, WriteOp("delete", "users", created.external_id, {}, "j-3"))
    with server.client() as c:
        assert c.get(f"/users/{created.external_id}").status_code == 404
        assert len(c.get("/users").json()) == 3


async def test_json_server_update_of_a_missing_record_is_rejected_as_gone(
    json_server: tuple[JsonServer, Connector],
) -> None:
    _, connector = json_server
    with pytest.raises(WriteRejected) as info:
        await write(connector, WriteOp("update", "users", "999", {"name": "Nobody"}, "j-4"))
    assert info.value.status == 404
