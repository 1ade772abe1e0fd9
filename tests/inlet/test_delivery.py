"""Delivery against the real demo app, served by `python -m inlet.demo_app` on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from bench.real_apps import repo_root
from inlet.delivery import Destination, drain, encode_batch, generate_secret
from inlet.local import free_port, local_client, start_process, stop_process
from inlet.store import MappedRecord, PageScope, outbox, sweep, write_page

SECRET = generate_secret()
SCOPE = PageScope("acme", "acme-hubspot", "users", generation="gen-1", run_id="run-1")
CONNECTION = SCOPE.connection_id


@dataclass
class DemoApp:
    """The demo app at `base_url` (running or not), seen through its HTTP API."""

    base_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def destination(self, **overrides: Any) -> Destination:
        return Destination(url=self.base_url, path="/inlet/events", secrets=(SecretStr(SECRET),), **overrides)

    def start(self, db: Path) -> None:
        port = self.base_url.rsplit(":", 1)[1]
        cmd = [sys.executable, "-m", "inlet.demo.app", "--port", port, "--db", str(db), "--secret", SECRET]
        self.processes.append(start_process(cmd, f"{self.base_url}/health", cwd=repo_root()))

    def stop(self) -> None:
        for proc in self.processes:
            stop_process(proc)

    def records(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        with local_client(base_url=self.base_url) as client:
            rows: list[dict[str, Any]] = client.get("/records", params={"include_deleted": int(include_deleted)}).json()
        return rows

    def stats(self) -> dict[str, int]:
        with local_client(base_url=self.base_url) as client:
            result: dict[str, int] = client.get("/stats").json()
        return result

    def post(self, path: str, body: dict[str, Any]) -> None:
        with local_client(base_url=self.base_url) as client:
            client.post(path, json=body).raise_for_status()


@pytest.fixture(scope="module")
def running_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoApp]:
    app = DemoApp(f"http://127.0.0.1:{free_port()}")
    app.start(tmp_path_factory.mktemp("demo-app") / "app.db")
    yield app
    app.stop()


@pytest.fixture
def app(running_app: DemoApp) -> DemoApp:
    """The module's demo app, emptied of records, counters and faults."""
    running_app.post("/_demo/reset", {})
    return running_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as async_client:
        yield async_client


@dataclass
class Sleeps:
    """A `sleep=` for drain that only records how long it was asked to wait."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def users(*ids: str, domain: str = "example.org") -> list[MappedRecord]:
    return [MappedRecord(i, {"email": f"user{i}@{domain}", "fullName": f"User {i}"}, None) for i in ids]


def delivered(app: DemoApp, include_deleted: bool = False) -> dict[str, Any]:
    return {row["external_id"]: row["record"] for row in app.records(include_deleted)}


async def test_drain_delivers_every_event_with_an_accepted_signature(
    sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient
) -> None:
    write_page(sqlite_engine, SCOPE, users("1", "2", "3"), next_request=None)
    result = await drain(sqlite_engine, CONNECTION, app.destination(), client)
    assert (result.delivered, result.batches, result.attempts, result.pending_left) == (3, 1, 1, False)
    assert delivered(app) == {r.external_id: r.record for r in users("1", "2", "3")}
    assert app.stats()["rejected_signatures"] == 0 and app.stats()["events_applied"] == 3
    assert (outbox.counts(sqlite_engine).pending, outbox.counts(sqlite_engine).dead) == (0, 0)


async def test_a_second_drain_sends_nothing(sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient) -> None:
    write_page(sqlite_engine, SCOPE, users("1", "2"), next_request=None)
    await drain(sqlite_engine, CONNECTION, app.destination(), client)
    again = await drain(sqlite_engine, CONNECTION, app.destination(), client)
    assert (again.delivered, again.batches, again.attempts, again.pending_left) == (0, 0, 0, False)
    assert app.stats()["batches"] == 1


async def test_batches_keep_the_outbox_order(sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient) -> None:
    write_page(sqlite_engine, SCOPE, users("5", "4", "3", "2", "1"), next_request=None)
    result = await drain(sqlite_engine, CONNECTION, app.destination(batch_size=2), client)
    assert (result.delivered, result.batches) == (5, 3)
    assert [row["external_id"] for row in app.records()] == ["5", "4", "3", "2", "1"]


async def test_updates_and_deletes_reach_the_app(
    sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient
) -> None:
    write_page(sqlite_engine, SCOPE, users("1", "2"), next_request=None)
    later = replace(SCOPE, generation="gen-2")
    write_page(sqlite_engine, later, users("1", domain="example.com"), next_request=None)
    sweep(sqlite_engine, later, max_share=1.0)
    result = await drain(sqlite_engine, CONNECTION, app.destination(), client)
    assert result.delivered == 4
    assert delivered(app, include_deleted=True) == {"1": users("1", domain="example.com")[0].record, "2": None}


async def test_503_with_retry_after_is_retried_until_accepted(
    sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient
) -> None:
    write_page(sqlite_engine, SCOPE, users("1", "2", "3"), next_request=None)
    app.post("/_demo/faults", {"fail_next": 2, "status": 503, "retry_after": 0})
    sleeps = Sleeps()
    result = await drain(sqlite_engine, CONNECTION, app.destination(), client, sleep=sleeps)
    assert (result.delivered, result.attempts, result.pending_left) == (3, 3, False)
    assert sleeps.waits == [0.0, 0.0]
    assert len(delivered(app)) == 3 and outbox.counts(sqlite_engine).pending == 0


async def test_422_on_a_single_event_parks_it_as_dead_with_the_body(
    sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient
) -> None:
    write_page(sqlite_engine, SCOPE, users("1"), next_request=None)
    app.post("/_demo/faults", {"fail_next": 1, "status": 422})
    result = await drain(sqlite_engine, CONNECTION, app.destination(), client, sleep=Sleeps())
    assert (result.delivered, result.dead, result.attempts, result.pending_left) == (0, 1, 1, False)
    assert "422" in result.dead_errors[0] and "injected fault" in result.dead_errors[0]
    assert (outbox.counts(sqlite_engine).pending, outbox.counts(sqlite_engine).dead) == (0, 1)
    assert delivered(app) == {} and (await drain(sqlite_engine, CONNECTION, app.destination(), client)).batches == 0


async def test_wrong_secret_opens_the_breaker_keeps_the_events_and_a_fixed_secret_goes_through_at_once(
    sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient
) -> None:
    write_page(sqlite_engine, SCOPE, users("1", "2"), next_request=None)
    wrong = generate_secret()
    forged = app.destination(batch_size=1).model_copy(update={"secrets": (SecretStr(wrong),)})
    result = await drain(sqlite_engine, CONNECTION, forged, client)
    assert (result.dead, result.delivered, result.attempts, result.refused, result.pending_left) == (
        0,
        0,
        1,
        True,
        True,
    )
    assert result.last_error is not None and "answered 401" in result.last_error and wrong not in result.last_error
    assert "destination.secret" in (result.failure() or "")
    assert app.stats()["rejected_signatures"] == 1 and delivered(app) == {}
    again = await drain(sqlite_engine, CONNECTION, forged, client)  # the same secret: parked, no request
    assert (again.attempts, again.refused) == (0, True) and app.stats()["rejected_signatures"] == 1
    # Parked behind the breaker, the drain held no claim: the next drain may take the batch at once.
    assert outbox.claim_batch(sqlite_engine, CONNECTION, 1, "probe", 60) not in (None, [])
    assert outbox.release(sqlite_engine, CONNECTION, "probe") == 1
    fixed = await drain(sqlite_engine, CONNECTION, app.destination(batch_size=1), client)
    assert (fixed.delivered, fixed.dead, fixed.pending_left) == (2, 0, False) and len(delivered(app)) == 2


async def test_rotating_secrets_are_all_signed(sqlite_engine: Engine, app: DemoApp, client: httpx.AsyncClient) -> None:
    write_page(sqlite_engine, SCOPE, users("1"), next_request=None)
    rotating = app.destination().model_copy(update={"secrets": (SecretStr(generate_secret()), SecretStr(SECRET))})
    result = await drain(sqlite_engine, CONNECTION, rotating, client)
    assert result.delivered == 1 and app.stats()["rejected_signatures"] == 0


async def test_app_down_leaves_everything_pending_until_it_is_back(
    sqlite_engine: Engine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    app = DemoApp(f"http://127.0.0.1:{free_port()}")
    destination = app.destination(max_attempts=2, backoff_seconds=0, max_backoff_seconds=0, retry_base_seconds=0)
    write_page(sqlite_engine, SCOPE, users("1", "2", "3"), next_request=None)
    down = await drain(sqlite_engine, CONNECTION, destination, client, sleep=Sleeps())
    assert (down.delivered, down.attempts, down.pending_left) == (0, 2, True)
    assert down.last_error is not None and "is the app up?" in down.last_error
    assert outbox.counts(sqlite_engine).pending == 3
    app.start(tmp_path / "app.db")
    try:
        up = await drain(sqlite_engine, CONNECTION, destination, client)
        assert (up.delivered, up.pending_left) == (3, False) and len(delivered(app)) == 3
    finally:
        app.stop()


async def test_events_deferred_after_a_failure_are_reported_as_left(
    sqlite_engine: Engine, client: httpx.AsyncClient
) -> None:
    destination = DemoApp(f"http://127.0.0.1:{free_port()}").destination(max_attempts=1, retry_base_seconds=60)
    write_page(sqlite_engine, SCOPE, users("1"), next_request=None)
    await drain(sqlite_engine, CONNECTION, destination, client, sleep=Sleeps())
    later = await drain(sqlite_engine, CONNECTION, destination, client, sleep=Sleeps())
    assert (later.batches, later.attempts, later.pending_left) == (0, 0, True)
    assert later.last_error is not None and "next attempt" in later.last_error


def test_encode_batch_is_the_contract_body(sqlite_engine: Engine) -> None:
    write_page(sqlite_engine, SCOPE, users("1"), next_request=None)
    body = orjson.loads(encode_batch(outbox.pending_batch(sqlite_engine, CONNECTION, 10)))
    assert {k: body[k] for k in ("tenant", "connection", "data_source")} == {
        "tenant": "acme",
        "connection": "acme-hubspot",
        "data_source": "users",
    }
    (event,) = body["events"]
    assert set(event) == {"event_id", "type", "external_id", "record", "source_updated_at", "idempotency_key"}
    assert (event["type"], event["record"]) == ("created", users("1")[0].record)


def test_destination_repr_hides_the_secret() -> None:
    assert SECRET not in repr(DemoApp("http://127.0.0.1:1").destination())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://inlet:hunter2@app.example.com/api?token=t0k3n#x", "https://app.example.com/api/inlet/events"),
        ("http://127.0.0.1:8400", "http://127.0.0.1:8400/inlet/events"),
    ],
)
def test_what_status_and_logs_show_of_a_destination_carries_no_credential(url: str, shown: str) -> None:
    """The breaker's key is what `inlet deliveries status`, `inlet status` and the run artifacts show."""
    destination = Destination(url=url, path="/inlet/events", secrets=(SecretStr(SECRET),))
    assert destination.key == shown
    for secret in ("hunter2", "t0k3n", SECRET):
        assert secret not in destination.key and secret not in repr(destination)
