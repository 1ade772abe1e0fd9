"""Pushes while the external app fails, for json-server, Kinto and every SaaS simulator: 429 and a 503 after the write
landed (no duplicate, the order kept), the simulator's own throttling and server errors, and a SIGKILL of the
process in the middle of a push run (nothing lost, no duplicate)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inlet.settings import get_settings
from inlet.store import link_for, open_store, push_counts
from tests.conftest import InletEnv, InletEnvFactory
from tests.integration.conftest import JsonServerFactory
from tests.support.connections import connect
from tests.support.faulty_proxy import Faults, faulty_proxy
from tests.support.real_apps import KintoServer
from tests.support.simulators import SAAS_APPS, RunningSimulator, running_simulator
from tests.support.team_app import TeamApp, run_push

pytestmark = pytest.mark.real_app

APPS = ["json_server", "kinto", *sorted(SAAS_APPS)]


@dataclass
class Target:
    """The external app under test: where it listens, how inlet connects to it, and what it holds."""

    env: InletEnv
    connection: str
    data_source: str
    upstream: str
    connect: Callable[[str], None]
    state: Callable[[], dict[str, str]]  # email -> full name of every live record
    emails: Callable[[], Counter[str]]
    sim: RunningSimulator | None = None

    def app(self) -> TeamApp:
        return TeamApp(self.env, self.connection, self.data_source)


@pytest.fixture(params=APPS)
def target(
    request: pytest.FixtureRequest, inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory, tmp_path: Path
) -> Iterator[Target]:
    env = inlet_env(records=0, start_app=False)
    if request.param == "json_server":
        server = json_server_factory(1)

        def users() -> list[dict[str, str]]:
            return list(httpx.get(server.base_url + "/users", timeout=10).json())

        yield Target(
            env,
            "acme-json",
            "users",
            server.base_url,
            lambda url: connect(env, "acme-json", "json_server", {"base_url": url}),
            lambda: {u["email"]: u["name"] for u in users()},
            lambda: Counter(u["email"] for u in users()),
        )
        return
    if request.param == "kinto":
        yield _kinto(env, request.getfixturevalue("kinto_collection"))
        return
    with running_simulator(env, request.param, tmp_path, records=1, connected=False) as sim:
        yield Target(env, sim.connection, sim.data_source, sim.url, sim.connect, sim.state, sim.emails, sim)


def _kinto(env: InletEnv, kinto: KintoServer) -> Target:
    """Kinto behind the proxy: the connection's base URL is the proxy's `/v1`, the proxy forwards to Kinto's root."""

    def connect_at(url: str) -> None:
        params = {"base_url": url + "/v1", "collection": kinto.collection}
        connect(env, "acme-kinto", "kinto", params, username="admin", password="s3cret")

    return Target(
        env,
        "acme-kinto",
        "users",
        kinto.base_url.removesuffix("/v1"),
        connect_at,
        lambda: {r["email"]: r["name"] for r in kinto.list_all()},
        lambda: Counter(r["email"] for r in kinto.list_all()),
    )


ADA = {"app_id": "app-1", "type": "created", "record": {"email": "ada@x.org", "fullName": "Ada Lovelace"}}
ADA_KING = {**ADA, "type": "updated", "record": {"email": "ada@x.org", "fullName": "Ada King"}}


def _assert_one_ada_king(target: Target) -> None:
    assert target.emails()["ada@x.org"] == 1  # a lost answer's write was found, not made again
    assert target.state()["ada@x.org"] == "Ada King"  # the update came after the create, as pushed
    link = link_for(open_store(target.env.settings.store_url), target.connection, target.data_source, "app-1")
    assert link is not None and link.external_id is not None
    assert push_counts(open_store(target.env.settings.store_url), target.connection).pending == 0


def test_a_write_while_the_app_answers_429_then_503_makes_one_record_in_order(target: Target) -> None:
    faults = Faults(["429", "429", "503-late"])
    with faulty_proxy(target.upstream, faults) as proxy:
        target.connect(proxy)
        target.app().push(ADA, ADA_KING)
        summary = run_push(target.connection)
        while push_counts(open_store(target.env.settings.store_url), target.connection).pending:
            summary = run_push(target.connection)  # an app with nothing to look a lost create up by retries later
    assert summary.failed == 0 and faults.writes >= 4
    _assert_one_ada_king(target)


@pytest.mark.parametrize("target", sorted(SAAS_APPS), indirect=True)
def test_a_write_while_the_simulator_throttles_and_fails_lands_once_in_order(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deferred push waits its backoff between runs: 0.2 s doubling here, not the default 30 s doubling."""
    assert target.sim is not None
    monkeypatch.setenv("INLET_DESTINATION__RETRY_BASE_SECONDS", "0.2")
    get_settings.cache_clear()
    target.connect(target.sim.url)
    target.sim.inject(status_429=2, retry_after=0, status_500=2)  # the app's own 429 (or 403) and 5xx answers
    target.app().push(ADA, ADA_KING)
    failed = run_push(target.connection).failed
    while push_counts(open_store(target.env.settings.store_url), target.connection).pending:
        failed += run_push(target.connection).failed
    assert failed == 0 and target.sim.control("stats")["requests"] > 4
    _assert_one_ada_king(target)


def test_a_sigkill_during_a_push_run_loses_nothing_and_duplicates_nothing(target: Target) -> None:
    faults = Faults(delay=0.05)
    records = 30
    with faulty_proxy(target.upstream, faults) as proxy:
        target.connect(proxy)
        target.app().push(
            *(
                {"app_id": f"app-{i}", "type": "created", "record": {"email": f"p{i}@x.org", "fullName": f"Person {i}"}}
                for i in range(records)
            )
        )
        before = sum(target.emails().values())
        run = f"asyncio.run(push_outbox('acme', {target.connection!r}))"
        code = "import asyncio; from flows.push_outbox import push_outbox; " + run
        proc = subprocess.Popen([sys.executable, "-c", code], env=target.env.env)
        try:
            while sum(target.emails().values()) < before + 5:  # progress: some records are written
                assert proc.poll() is None, "the push run ended before it could be killed"
                time.sleep(0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert sum(target.emails().values()) - before < records
        summary = run_push(target.connection)
    emails = target.emails()
    assert all(emails[f"p{i}@x.org"] == 1 for i in range(records)), emails  # every one there, none twice
    engine = open_store(target.env.settings.store_url)
    assert push_counts(engine, target.connection).pending == 0 and summary.failed == 0
    assert all(link_for(engine, target.connection, target.data_source, f"app-{i}") for i in range(records))
