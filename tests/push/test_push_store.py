"""The push outbox, data links and the echo check, on a real SQLite store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from inlet.store import (
    Heard,
    MappedRecord,
    PageScope,
    PushChange,
    WrittenRecord,
    begin_create,
    defer_push,
    echo_ids,
    enqueue,
    finish_write,
    link_for,
    open_store,
    park_push,
    pending_pushes,
    push_stats,
    replay_pushes,
    utcnow,
    value_hash,
    write_page,
)


@pytest.fixture
def engine() -> Engine:
    return open_store("sqlite://")


def _change(app_id: str, kind: str = "updated", change: str = "c1", **record: str) -> PushChange:
    return PushChange("acme", "acme-json", "users", app_id, kind, record or {"email": f"{app_id}@x.org"}, change)


def test_a_resent_change_is_queued_once(engine: Engine) -> None:
    first = enqueue(engine, [_change("u1"), _change("u2")])
    again = enqueue(engine, [_change("u1")])
    assert [new for _, new in first] == [True, True]
    assert again == [(first[0][0], False)]
    assert [r.app_id for r in pending_pushes(engine, "acme-json", 10)] == ["u1", "u2"]


def test_a_deferred_push_holds_back_the_later_pushes_of_its_record_only(engine: Engine) -> None:
    rows = enqueue(engine, [_change("u1", change="a"), _change("u2"), _change("u1", change="b")])
    defer_push(engine, rows[0][0], "503", next_attempt_at=utcnow() + timedelta(hours=1))
    assert [r.app_id for r in pending_pushes(engine, "acme-json", 10)] == ["u2"]


def test_one_push_per_record_per_batch_keeps_order(engine: Engine) -> None:
    enqueue(engine, [_change("u1", change="a"), _change("u1", change="b")])
    batch = pending_pushes(engine, "acme-json", 10)
    assert len(batch) == 1
    finish_write(engine, batch[0], WrittenRecord("7", "updated", {}, None, None))
    (second,) = pending_pushes(engine, "acme-json", 10)
    assert second.idempotency_key != batch[0].idempotency_key


def test_a_dead_push_holds_back_its_record_until_replayed(engine: Engine) -> None:
    rows = enqueue(engine, [_change("u1", change="a"), _change("u1", change="b")])
    park_push(engine, rows[0][0], "400 invalid email")
    assert pending_pushes(engine, "acme-json", 10) == []
    assert replay_pushes(engine, tenant_id="acme") == 1
    assert [r.id for r in pending_pushes(engine, "acme-json", 10)] == [rows[0][0]]


def test_a_create_whose_outcome_was_never_recorded_is_looked_up_before_it_is_sent_again(engine: Engine) -> None:
    assert begin_create(engine, "acme-json", "users", "u1", "key-1") is False
    assert begin_create(engine, "acme-json", "users", "u1", "key-1") is True  # the first try may have landed


def test_finish_write_links_the_record_and_counts_it(engine: Engine) -> None:
    ((row_id, _),) = enqueue(engine, [_change("u1", "created")])
    (row,) = pending_pushes(engine, "acme-json", 10)
    finish_write(engine, row, WrittenRecord("42", "created", {"email": value_hash("u1@x.org")}, "e1", None))
    link = link_for(engine, "acme-json", "users", "u1")
    assert link is not None and (link.external_id, link.etag, link.create_key) == ("42", "e1", None)
    assert pending_pushes(engine, "acme-json", 10) == []
    assert [(s.written, s.failed) for s in push_stats(engine)] == [(1, 0)]


def _written(engine: Engine, external_id: str, modified_at: str | None, **fields: str) -> None:
    enqueue(engine, [_change("u-" + external_id, "created", change=external_id)])
    row = next(r for r in pending_pushes(engine, "acme-json", 50) if r.app_id == "u-" + external_id)
    hashes = {path: value_hash(value) for path, value in fields.items()}
    finish_write(engine, row, WrittenRecord(external_id, "created", hashes, None, modified_at))


def test_an_echo_is_the_written_values_not_modified_since(engine: Engine) -> None:
    _written(engine, "1", "2026-12-07T05:00:00+00:00", email="a@x.org", name="Ada")
    heard = [
        Heard("1", {"id": 1, "email": "a@x.org", "name": "Ada"}, "2026-12-07T05:00:00Z"),  # ours
    ]
    later = [Heard("1", {"id": 1, "email": "a@x.org", "name": "Ada"}, "2026-12-07T05:00:01Z")]  # changed after
    other = [Heard("1", {"id": 1, "email": "b@x.org", "name": "Ada"}, None)]  # a written field differs
    assert echo_ids(engine, "acme-json", "users", heard, window_seconds=600) == {"1"}
    assert echo_ids(engine, "acme-json", "users", later, window_seconds=600) == set()
    assert echo_ids(engine, "acme-json", "users", other, window_seconds=600) == set()


def test_the_apps_modified_by_marker_overrides_the_hashes(engine: Engine) -> None:
    _written(engine, "1", None, email="a@x.org")
    someone_else = [Heard("1", {"email": "a@x.org"}, None, by_inlet=False)]
    assert echo_ids(engine, "acme-json", "users", someone_else, window_seconds=600) == set()


def test_an_echo_updates_the_ledger_without_an_event(engine: Engine) -> None:
    _written(engine, "1", None, email="a@x.org")
    scope = PageScope("acme", "acme-json", "users", "g1", "run-1")
    echo = MappedRecord("1", {"email": "a@x.org"}, None, echo=True)
    fresh = MappedRecord("2", {"email": "b@x.org"}, None)
    counts = write_page(engine, scope, [echo, fresh], next_request=None)
    assert (counts.created, counts.echo_suppressed) == (1, 1)
    assert [s.echo_suppressed for s in push_stats(engine)] == [1]
