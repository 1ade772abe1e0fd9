"""Delivery drills: the real demo app (a process on loopback) with injected faults, an outbox of events, and
the drain run until the app holds exactly the source. The tests run them scaled down; bench/reliability.py
runs them at full size and writes the reliability table.

`python -m bench.drill STORE_URL APP_URL CONNECTION POLICY` drains in a process of its own (the
signing secret comes from INLET_DRILL_SECRET), so a test can kill it mid-delivery.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine

from inlet.delivery import Destination, DrainResult, drain, generate_secret
from inlet.local import free_port, local_client, start_process, stop_process
from inlet.store import MappedRecord, PageScope, create_store_engine, migrate, outbox, write_page

__all__ = ["BENCH_POLICY", "TEST_POLICY", "Drill", "Figures"]

_ROOT = Path(__file__).resolve().parent.parent
SECRET_ENV = "INLET_DRILL_SECRET"

# Clocks scaled down for the test suite: seconds become tens of milliseconds.
TEST_POLICY: dict[str, Any] = {
    "max_attempts": 3,
    "backoff_seconds": 0.01,
    "max_backoff_seconds": 2.0,
    "retry_base_seconds": 0.05,
    "retry_cap_seconds": 0.5,
    "breaker_threshold": 3,
    "breaker_cooldown_seconds": 0.2,
    "concurrency": 2,
    "rate_per_second": 500.0,
    "timeout_seconds": 10.0,
}
# The bench: the shipped policy's shape with minutes instead of hours, so a 2-minute outage fits in a run.
BENCH_POLICY: dict[str, Any] = TEST_POLICY | {
    "max_attempts": 4,
    "backoff_seconds": 0.5,
    "max_backoff_seconds": 10.0,
    "retry_base_seconds": 2.0,
    "retry_cap_seconds": 30.0,
    "breaker_threshold": 5,
    "breaker_cooldown_seconds": 5.0,
    "rate_per_second": 50.0,
    "timeout_seconds": 30.0,
}
POLICIES = {"test": TEST_POLICY, "bench": BENCH_POLICY}


@dataclass
class Figures:
    """One scenario's row of the reliability table."""

    scenario: str
    events: int = 0
    attempts: int = 0
    app_requests: int = 0
    duplicates: int = 0
    applied: int = 0
    dead: int = 0
    seconds: float = 0.0
    drains: int = 0
    parked: int = 0  # drains that found the destination's breaker open
    notes: list[str] = field(default_factory=list)


class Drill:
    """A demo app process, a store with `connections` connections of `records` users each, and the drains."""

    def __init__(self, folder: Path, *, records: int, connections: int = 1, batch_size: int = 50) -> None:
        self.folder, self.records, self.batch_size = folder, records, batch_size
        self.secret = generate_secret()
        self.url = f"http://127.0.0.1:{free_port()}"
        self.engine: Engine = create_store_engine(f"sqlite:///{folder / 'inlet.db'}")
        migrate(self.engine)
        self.connections = [f"acme-{n}" for n in range(connections)]
        self.app: subprocess.Popen[bytes] | None = None
        self.expected: dict[tuple[str, str], dict[str, Any]] = {}
        self.events = 0

    def start_app(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        cmd = [sys.executable, "-m", "inlet.demo.app", "--port", port, "--db", str(self.folder / "app.db")]
        self.app = start_process(
            cmd,
            self.url + "/health",
            cwd=_ROOT,
            env={"INLET_DEMO_APP_SECRET": self.secret},
            log_path=self.folder / "app.log",
        )

    def stop_app(self) -> None:
        if self.app is not None:
            stop_process(self.app)
            self.app = None

    def close(self) -> None:
        self.stop_app()
        self.engine.dispose()

    def fill(self) -> None:
        """Each connection: every record created, then every third one updated (two events of one record)."""
        for connection in self.connections:
            scope = PageScope("acme", connection, "users", generation="gen-1", run_id="run-1")
            first = [self._user(n, "v1") for n in range(self.records)]
            write_page(self.engine, scope, first, next_request=None)
            updated = [self._user(n, "v2") for n in range(0, self.records, 3)]
            write_page(self.engine, scope, updated, next_request=None)
            for record in [*first, *updated]:
                self.expected[(connection, record.external_id)] = record.record
            self.events += len(first) + len(updated)

    def destination(self, policy: dict[str, Any], **overrides: Any) -> Destination:
        settings = {**policy, "batch_size": self.batch_size, **overrides}
        return Destination(url=self.url, path="/inlet/events", secrets=(SecretStr(self.secret),), **settings)

    def faults(self, **config: Any) -> None:
        with local_client(base_url=self.url) as client:
            client.post("/_demo/faults", json=config).raise_for_status()

    def stats(self) -> dict[str, int]:
        with local_client(base_url=self.url) as client:
            stats: dict[str, int] = client.get("/stats").json()
        return stats

    def app_state(self) -> dict[tuple[str, str], dict[str, Any]]:
        with local_client(base_url=self.url) as client:
            rows = client.get("/records").json()
        return {(row["connection"], row["external_id"]): row["record"] for row in rows}

    def pending(self) -> int:
        return outbox.counts(self.engine).pending

    async def converge(
        self,
        destination: Destination,
        figures: Figures,
        *,
        tick: float,
        deadline: float,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        """Drain every connection, again and again like the deliver-outbox schedule every `tick` seconds,
        until nothing is pending."""
        started = time.monotonic()
        async with httpx.AsyncClient(trust_env=False) as client:
            while True:
                results = await asyncio.gather(
                    *(drain(self.engine, c, destination, client, sleep=sleep) for c in self.connections)
                )
                figures.drains += 1
                _add(figures, results)
                if self.pending() == 0:
                    break
                if time.monotonic() - started > deadline:
                    raise TimeoutError(f"{figures.scenario}: {self.pending()} events still pending after {deadline} s")
                await asyncio.sleep(tick)
        figures.seconds += time.monotonic() - started

    def record_app_figures(self, figures: Figures) -> None:
        stats = self.stats()
        figures.events = self.events
        figures.app_requests, figures.duplicates, figures.applied = (
            stats["requests"],
            stats["duplicates"],
            stats["events_applied"],
        )

    def _user(self, n: int, version: str) -> MappedRecord:
        return MappedRecord(str(n), {"email": f"user{n}@example.org", "version": version}, None)


def _add(figures: Figures, results: list[DrainResult]) -> None:
    for result in results:
        figures.attempts += result.attempts
        figures.dead += result.dead
        figures.parked += result.parked


def spawn_drain(drill: Drill, connection: str, policy: str = "test") -> subprocess.Popen[bytes]:
    """A drain in a process of its own (for the kill test)."""
    cmd = [sys.executable, "-m", "bench.drill", str(drill.engine.url), drill.url, connection, policy]
    env = {**os.environ, SECRET_ENV: drill.secret}
    log = (drill.folder / "drain.log").open("wb")
    return subprocess.Popen(cmd, cwd=_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _main(store_url: str, app_url: str, connection: str, policy: str) -> None:
    destination = Destination(
        url=app_url,
        path="/inlet/events",
        secrets=(SecretStr(os.environ[SECRET_ENV]),),
        batch_size=10,
        **POLICIES[policy],
    )

    async def run() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            await drain(create_store_engine(store_url), connection, destination, client)

    asyncio.run(run())


if __name__ == "__main__":
    _main(*sys.argv[1:5])
