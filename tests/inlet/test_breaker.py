"""The circuit breaker in the store, driven by an explicit clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from connectors import full_jitter
from inlet.delivery import breaker
from inlet.store import utcnow

KEY = "http://app.example/inlet/events"
POLICY = breaker.BreakerPolicy(threshold=3, cooldown_seconds=10, cap_seconds=25)
T0 = utcnow()


def fail(engine: Engine, times: int, at: timedelta = timedelta()) -> object:
    probe_at = None
    for _ in range(times):
        probe_at = breaker.record_failure(engine, KEY, POLICY, "503", T0 + at)
    return probe_at


def test_an_unknown_destination_is_closed(engine: Engine) -> None:
    assert breaker.gate(engine, KEY, POLICY, T0) == ("closed", None)


def test_opens_after_the_threshold_and_parks_until_the_probe_time(engine: Engine) -> None:
    assert fail(engine, 2) is None and breaker.gate(engine, KEY, POLICY, T0)[0] == "closed"
    probe_at = fail(engine, 1)
    assert probe_at == T0 + timedelta(seconds=10)
    assert breaker.gate(engine, KEY, POLICY, T0 + timedelta(seconds=9)) == ("open", probe_at)


def test_exactly_one_drain_gets_the_probe(engine: Engine) -> None:
    fail(engine, 3)
    later = T0 + timedelta(seconds=11)
    assert breaker.gate(engine, KEY, POLICY, later) == ("probe", None)
    assert breaker.gate(engine, KEY, POLICY, later)[0] == "open"


def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_the_cap(engine: Engine) -> None:
    fail(engine, 3)
    waits = []
    at = timedelta()
    for _ in range(3):
        at += timedelta(seconds=30)
        assert breaker.gate(engine, KEY, POLICY, T0 + at)[0] == "probe"
        probe_at = breaker.record_failure(engine, KEY, POLICY, "503", T0 + at)
        assert probe_at is not None
        waits.append((probe_at - (T0 + at)).total_seconds())
    assert waits == [20.0, 25.0, 25.0]


def test_a_success_closes_it(engine: Engine) -> None:
    fail(engine, 3)
    breaker.record_success(engine, KEY)
    assert breaker.gate(engine, KEY, POLICY, T0) == ("closed", None)
    assert fail(engine, 2) is None  # the count started again


def test_the_last_error_is_kept_for_the_status(engine: Engine) -> None:
    breaker.record_failure(engine, KEY, POLICY, "503: " + "x" * 5000, T0)
    state = breaker.read_states(engine)[KEY]
    assert (state.state, state.failures, len(state.last_error or "")) == ("closed", 1, 4000)


@pytest.mark.parametrize("attempt", [1, 5, 40, 1000])
def test_full_jitter_stays_between_zero_and_the_capped_exponential(attempt: int) -> None:
    rng = random.Random(attempt)
    draws = [full_jitter(attempt, 2.0, 3600.0, rng) for _ in range(200)]
    bound = min(3600.0, 2.0 * 2**attempt)
    assert all(0 <= d <= bound for d in draws) and max(draws) > bound / 2


def test_a_refusal_opens_at_once_and_only_changed_credentials_pass_before_the_probe(engine: Engine) -> None:
    probe_at = breaker.record_refusal(engine, KEY, POLICY, "401: signature verification failed", "fp-old", T0)
    assert probe_at == T0 + timedelta(seconds=10)
    assert breaker.gate(engine, KEY, POLICY, T0 + timedelta(seconds=1), "fp-old") == ("open", probe_at)
    assert breaker.gate(engine, KEY, POLICY, T0 + timedelta(seconds=1), "fp-new")[0] == "probe"
    # the probe is claimed once: a second drain with the new credentials waits for its outcome
    assert breaker.gate(engine, KEY, POLICY, T0 + timedelta(seconds=1), "fp-new")[0] == "open"
    breaker.record_success(engine, KEY)
    assert breaker.gate(engine, KEY, POLICY, T0 + timedelta(seconds=2), "fp-new") == ("closed", None)
    assert breaker.read_states(engine)[KEY].refused_credentials is None
