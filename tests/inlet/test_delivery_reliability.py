"""A bad day at the team's app, scaled down: the real demo app with injected faults, drains until it holds the
source. Each scenario checks the app's final state, that no event was applied twice, and the attempts made."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.drill import TEST_POLICY, Drill, Figures, spawn_drain
from inlet.delivery import drain
from inlet.store import outbox


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[Drill]:
    made = Drill(tmp_path, records=60, batch_size=10)
    made.fill()
    yield made
    made.close()


def converged(drill: Drill, figures: Figures) -> None:
    """The app holds exactly the source and applied each event once."""
    drill.record_app_figures(figures)
    assert drill.app_state() == drill.expected
    assert figures.applied == drill.events and drill.pending() == 0


async def test_random_503s_converge_and_every_attempt_reached_the_app(drill: Drill) -> None:
    drill.start_app()
    drill.faults(failure_rate=0.2, status=503, seed=7)
    figures = Figures("503 x 20%")
    await drill.converge(drill.destination(TEST_POLICY), figures, tick=0.05, deadline=60)
    converged(drill, figures)
    faults = drill.stats()["faults"]
    assert faults > 0 and figures.attempts == figures.app_requests == math.ceil(drill.events / 10) + faults


async def test_429_storm_waits_as_long_as_retry_after_says_and_does_not_trip_the_breaker(drill: Drill) -> None:
    drill.start_app()
    drill.faults(fail_next=5, status=429, retry_after=1)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    figures = Figures("429 storm")
    await drill.converge(drill.destination(TEST_POLICY), figures, tick=0.05, deadline=60, sleep=record)
    converged(drill, figures)
    assert waits and set(waits) == {1.0} and figures.parked == 0
    assert figures.attempts == figures.app_requests == math.ceil(drill.events / 10) + 5


async def test_app_down_parks_deliveries_behind_the_breaker_until_it_is_back(drill: Drill) -> None:
    figures = Figures("down")
    destination = drill.destination(TEST_POLICY)
    converging = asyncio.create_task(drill.converge(destination, figures, tick=0.05, deadline=60))
    started = time.monotonic()
    while figures.drains < 20:  # the schedule keeps coming back while the app is down
        await asyncio.sleep(0.05)
    down = time.monotonic() - started
    await asyncio.to_thread(drill.start_app)
    await converging
    converged(drill, figures)
    failed = figures.attempts - figures.app_requests
    cooldown, cap = TEST_POLICY["breaker_cooldown_seconds"], TEST_POLICY["retry_cap_seconds"]
    probes = math.ceil(math.log2(down / cooldown + 1)) + math.ceil(down / cap) + 1
    # each probe of a half-open breaker may use a run's in-run tries; without the breaker every drain would
    # burn max_attempts (20+ drains x 3), far above this bound
    most = TEST_POLICY["breaker_threshold"] + probes * TEST_POLICY["max_attempts"]
    assert TEST_POLICY["breaker_threshold"] <= failed <= most, (failed, probes)
    assert failed < figures.drains * TEST_POLICY["max_attempts"]
    assert figures.parked > 0


async def test_a_slow_app_gets_no_more_requests_at_once_than_the_destination_allows(tmp_path: Path) -> None:
    drill = Drill(tmp_path, records=10, connections=4, batch_size=50)
    drill.fill()
    drill.start_app()
    try:
        drill.faults(delay_seconds=0.3)
        figures = Figures("slow")
        await drill.converge(drill.destination(TEST_POLICY), figures, tick=0.05, deadline=60)
        converged(drill, figures)
        assert drill.stats()["max_in_flight"] == TEST_POLICY["concurrency"] and figures.attempts == 4
    finally:
        drill.close()


async def test_a_rejected_record_becomes_dead_with_its_later_events_and_a_replay_sends_them(drill: Drill) -> None:
    drill.start_app()
    drill.faults(reject_ids=["3"])
    figures = Figures("422")
    await drill.converge(drill.destination(TEST_POLICY), figures, tick=0.05, deadline=60)
    assert figures.dead == 2 and ("acme-0", "3") not in drill.app_state()
    assert figures.attempts == 1 + math.ceil((drill.events - 2) / 10)  # the refusal, then batches without them
    drill.faults()
    assert outbox.replay(drill.engine) == 2
    await drill.converge(drill.destination(TEST_POLICY), figures, tick=0.05, deadline=60)
    converged(drill, figures)


@pytest.mark.parametrize("fault", [{"reject_ids": ["3"], "explain": False}, {"max_events": 3}])
async def test_unexplained_refusals_are_bisected_down_to_the_poisoned_record(
    drill: Drill, fault: dict[str, object]
) -> None:
    drill.start_app()
    drill.faults(**fault)
    figures = Figures("bisect")
    await drill.converge(drill.destination(TEST_POLICY), figures, tick=0.05, deadline=60)
    expected = (
        {k: v for k, v in drill.expected.items() if k != ("acme-0", "3")} if "reject_ids" in fault else drill.expected
    )
    assert drill.app_state() == expected and figures.dead == (2 if "reject_ids" in fault else 0)


async def test_a_drain_killed_mid_delivery_loses_nothing_and_applies_nothing_twice(drill: Drill) -> None:
    drill.start_app()
    drill.faults(delay_seconds=0.2)
    process = spawn_drain(drill, "acme-0")
    try:
        deadline = time.monotonic() + 60
        while drill.stats()["events_applied"] < 20 and time.monotonic() < deadline and process.poll() is None:
            await asyncio.sleep(0.05)
        assert process.poll() is None, "the drain finished before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert 0 < drill.pending() < drill.events
    drill.faults()
    figures = Figures("killed")
    await drill.converge(drill.destination(TEST_POLICY), figures, tick=0.05, deadline=60)
    converged(drill, figures)
    assert figures.duplicates <= 10  # at most the batch in flight when the process died


async def test_two_concurrent_drains_never_send_the_same_row(drill: Drill) -> None:
    """Two drains of one connection at once (say the scheduled deliver-outbox and an import), over real HTTP
    to a slow app: each batch is claimed by one of them, so the app sees every batch once."""
    drill.start_app()
    drill.faults(delay_seconds=0.05)
    destination = drill.destination(TEST_POLICY)
    async with httpx.AsyncClient(trust_env=False) as first, httpx.AsyncClient(trust_env=False) as second:
        results = await asyncio.gather(
            drain(drill.engine, "acme-0", destination, first), drain(drill.engine, "acme-0", destination, second)
        )
    figures = Figures("two drains")
    drill.record_app_figures(figures)
    assert drill.app_state() == drill.expected and drill.pending() == 0
    assert figures.duplicates == 0 and figures.applied == drill.events
    assert figures.app_requests == math.ceil(drill.events / 10)  # no batch was sent twice
    assert sum(r.delivered for r in results) == drill.events
