"""Smoke tests: the real apps start on 127.0.0.1, behave as documented, and are gone after stop_process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from bench.real_apps import iter_link_pages, require_json_server, start_json_server
from connectors.incremental import pull_changes
from inlet.errors import ProcessError
from inlet.local import free_port, local_client, start_process, stop_process
from tests.integration.conftest import JsonServerFactory
from tests.support.real_apps import KintoServer, require_kinto, start_kinto


def _assert_gone(pid: int) -> None:
    assert not psutil.pid_exists(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in the process group either


@pytest.mark.real_app
def test_kinto_keyset_pagination_and_tombstones(kinto_collection: KintoServer) -> None:
    kinto = kinto_collection
    assert kinto.base_url.startswith("http://127.0.0.1:") and kinto.base_url.endswith("/v1")
    assert kinto.seed(120) == 120

    ids: list[str] = []
    pages = 0
    with kinto.client() as c:
        r = c.get(kinto.records_url, params={"_limit": 50, "_sort": "last_modified"})
        while True:
            r.raise_for_status()
            pages += 1
            ids.extend(row["id"] for row in r.json()["data"])
            next_page = r.headers.get("Next-Page")
            if not next_page:
                break
            r = c.get(next_page)
        etag = r.headers["ETag"].strip('"')
    assert pages == 3
    assert len(ids) == 120 and len(set(ids)) == 120
    assert len(kinto.list_all()) == 120

    gone = ids[7]
    tombstone = kinto.delete(gone)
    assert tombstone["deleted"] is True
    changed = kinto.update(ids[8], {"name": "Renamed"})
    assert changed["name"] == "Renamed"

    with kinto.client() as c:
        assert c.get(f"{kinto.records_url}/{gone}").status_code == 404
        r = c.get(kinto.records_url, params={"_since": etag, "_sort": "last_modified"})
        r.raise_for_status()
        since = r.json()["data"]
    assert [row["id"] for row in since] == [gone, ids[8]]
    assert since[0]["deleted"] is True and since[0]["last_modified"] > int(etag)
    assert "deleted" not in since[1] and since[1]["name"] == "Renamed"
    assert kinto.list_all(since=etag) == since
    assert gone not in {row["id"] for row in kinto.list_all()}


@pytest.mark.real_app
def test_json_server_link_pagination_patch_delete(json_server_factory: JsonServerFactory) -> None:
    js = json_server_factory(250)
    assert js.base_url.startswith("http://127.0.0.1:")

    rows: list[dict[str, object]] = []
    with js.client() as c:
        pages = list(iter_link_pages(c, f"{js.users_url}?_page=1&_limit=100"))
        for page in pages:
            rows.extend(page.json())
        assert pages[0].headers["X-Total-Count"] == "250"
    assert len(pages) == 3
    assert sorted(int(str(row["id"])) for row in rows) == list(range(1, 251))

    before = rows[41]
    patched = js.update_user(42, {"name": "Changed"})
    assert patched["name"] == "Changed" and patched["email"] == "user41@example.org"
    with js.client() as c:
        got = c.get("/users/42").json()
    assert got["name"] == "Changed"
    assert isinstance(before["updatedAt"], int) and got["updatedAt"] >= before["updatedAt"]

    js.delete_user(42)
    with js.client() as c:
        assert c.get("/users/42").status_code == 404
        assert c.get("/users", params={"id": 42}).json() == []

    added = js.add_user({"email": "new@example.org", "name": "Newbie", "age": 33})
    assert added["id"] == 251 and isinstance(added["createdAt"], int)


@pytest.mark.real_app
@pytest.mark.needs_kinto
@pytest.mark.needs_json_server
def test_stop_process_leaves_no_pid(tmp_path: Path) -> None:
    require_kinto()
    require_json_server()
    kinto = start_kinto(tmp_path / "kinto")
    js = start_json_server(tmp_path / "js", 3)
    pids = [kinto.proc.pid, js.proc.pid]
    assert all(psutil.pid_exists(pid) for pid in pids)
    with local_client() as c:
        assert c.get(f"{kinto.base_url}/__heartbeat__").status_code == 200
        assert c.get(f"{js.base_url}/users").status_code == 200

    stop_process(kinto.proc)
    stop_process(js.proc)
    stop_process(js.proc)  # idempotent
    for pid in pids:
        _assert_gone(pid)
    assert kinto.proc.returncode is not None and js.proc.returncode is not None


@pytest.mark.real_app
def test_start_process_fails_fast_with_output(tmp_path: Path) -> None:
    code = "import sys; sys.stderr.write('boom: cannot start\\n'); sys.exit(3)"
    port = free_port()
    with pytest.raises(ProcessError, match="boom: cannot start") as info:
        start_process(
            [sys.executable, "-c", code], f"http://127.0.0.1:{port}/", timeout=30, log_path=tmp_path / "x.log"
        )
    assert "exited with 3" in str(info.value)


@pytest.mark.real_app
async def test_kinto_changes_since_a_pull_are_its_updates_and_tombstones(kinto_collection: KintoServer) -> None:
    from pydantic import SecretStr

    from connectors.egress import EgressPolicy
    from connectors.registry import open_connector

    kinto_collection.seed(30)
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    creds = {"username": SecretStr("admin"), "password": SecretStr("s3cret")}
    loopback = EgressPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    async with open_connector("kinto", parameters=params, credentials=creds, egress=loopback) as kinto:
        first = await pull_changes(kinto, "records")
        ids = [r["id"] for r in kinto_collection.list_all()]
        kinto_collection.update(ids[0], {"name": "Renamed"})
        kinto_collection.delete(ids[1])
        later = await pull_changes(kinto, "records", first.since)
    assert len(first.changes) == 30 and first.since
    assert [(c.kind, c.external_id) for c in later.changes] == [("upsert", ids[0]), ("deleted", ids[1])]
