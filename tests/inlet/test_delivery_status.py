"""Delivery figures per destination, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine

from inlet.delivery import breaker, destination_figures, generate_secret
from inlet.settings import Settings
from inlet.store import MappedRecord, PageScope, outbox, utcnow, write_page

SCOPE = PageScope("acme", "acme-hubspot", "users", generation="gen-1", run_id="run-1")


def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, destination={"url": "https://app.example", "secret": SecretStr(generate_secret())})


def test_counts_due_deferred_and_dead_events_and_the_oldest_age(engine: Engine, tmp_path: Path) -> None:
    write_page(engine, SCOPE, [MappedRecord(i, {"n": i}, None) for i in "1234"], next_request=None)
    batch = outbox.pending_batch(engine, "acme-hubspot", 4)
    outbox.park(engine, [batch[0].id], "422")
    outbox.defer(engine, [batch[1].id, batch[2].id], "503", next_attempt_at=utcnow() + timedelta(hours=1))
    (row,) = destination_figures(engine, settings(tmp_path))
    assert (row.destination, row.pending, row.parked, row.dead, row.breaker) == (
        "https://app.example/inlet/events",
        1,
        2,
        1,
        "closed",
    )
    assert row.oldest_age_seconds is not None and 0 <= row.oldest_age_seconds < 600


def test_an_open_breaker_parks_everything_and_names_the_probe_time(engine: Engine, tmp_path: Path) -> None:
    write_page(engine, SCOPE, [MappedRecord("1", {"n": 1}, None)], next_request=None)
    policy = breaker.BreakerPolicy(threshold=1)
    probe_at = breaker.record_failure(engine, "https://app.example/inlet/events", policy, "503")
    (row,) = destination_figures(engine, settings(tmp_path))
    assert probe_at is not None and (row.pending, row.parked, row.breaker) == (0, 1, "open")
    assert row.next_probe == probe_at.isoformat(timespec="seconds")
