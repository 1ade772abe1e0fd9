"""The record ledger: classification, idempotency keys, atomic pages with their checkpoint, and the sweep."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, Row, select
from sqlmodel import Session

from inlet.store import (
    Checkpoint,
    HeardChange,
    LedgerEntry,
    MappedRecord,
    OutboxEvent,
    PageScope,
    QuarantinedRecord,
    idempotency_key,
    inbox,
    ledger,
    live_count,
    payload_hash,
    sweep,
    write_page,
)

SCOPE = PageScope("acme", "acme-hubspot", "users", generation="gen-1", run_id="run-1")
NEXT_RUN = replace(SCOPE, generation="gen-2", run_id="run-2")


@pytest.fixture
def store(engine: Engine) -> Engine:
    """The store with a started enumeration of SCOPE's connection, as full-import leaves it."""
    with Session(engine) as session:
        session.add(Checkpoint(connection_id=SCOPE.connection_id, data_source=SCOPE.data_source, generation="gen-1"))
        session.commit()
    return engine


def user(external_id: str, email: str | None = None) -> MappedRecord:
    record = {"email": email or f"user{external_id}@example.org", "fullName": f"User {external_id}"}
    return MappedRecord(external_id, record, "2026-11-24T17:24:49.524Z")


def rows(engine: Engine, table: Any) -> list[Row[Any]]:
    with engine.connect() as db:
        return list(db.execute(select(table.__table__)).all())


def events(engine: Engine) -> list[tuple[str, str, int]]:
    return [(e.type, e.external_id, e.version) for e in sorted(rows(engine, OutboxEvent), key=lambda e: e.id)]


def entries(engine: Engine) -> dict[str, Row[Any]]:
    return {row.external_id: row for row in rows(engine, LedgerEntry)}


def checkpoint(engine: Engine) -> Row[Any]:
    (row,) = rows(engine, Checkpoint)
    return row


def test_new_records_become_created_events_at_version_1(store: Engine) -> None:
    counts = write_page(store, SCOPE, [user("1"), user("2")], next_request=None)
    assert (counts.created, counts.updated, counts.unchanged) == (2, 0, 0)
    assert events(store) == [("created", "1", 1), ("created", "2", 1)]
    assert {e: row.version for e, row in entries(store).items()} == {"1": 1, "2": 1}


def test_event_carries_the_record_and_the_contract_fields(store: Engine) -> None:
    write_page(store, SCOPE, [user("1")], next_request=None)
    (event,) = rows(store, OutboxEvent)
    assert orjson.loads(event.record) == user("1").record
    assert (event.tenant_id, event.connection_id, event.data_source) == ("acme", "acme-hubspot", "users")
    assert event.idempotency_key == idempotency_key(SCOPE, "1", 1)
    assert event.source_updated_at == "2026-11-24T17:24:49.524Z" and event.status == "pending"


def test_same_page_again_is_unchanged_and_sends_nothing(store: Engine) -> None:
    write_page(store, SCOPE, [user("1"), user("2")], next_request=None)
    counts = write_page(store, NEXT_RUN, [user("2"), user("1")], next_request=None)
    assert (counts.created, counts.updated, counts.unchanged) == (0, 0, 2)
    assert len(events(store)) == 2
    assert {row.last_seen_run for row in entries(store).values()} == {"gen-2"}


def test_changed_record_is_updated_at_version_2(store: Engine) -> None:
    write_page(store, SCOPE, [user("1")], next_request=None)
    counts = write_page(store, SCOPE, [user("1", "new@example.org")], next_request=None)
    assert (counts.created, counts.updated) == (0, 1)
    assert events(store) == [("created", "1", 1), ("updated", "1", 2)]
    assert entries(store)["1"].version == 2


def test_a_to_b_to_a_gives_three_distinct_idempotency_keys(store: Engine) -> None:
    for email in ("a@example.org", "b@example.org", "a@example.org"):
        write_page(store, SCOPE, [user("1", email)], next_request=None)
    keys = [row.idempotency_key for row in rows(store, OutboxEvent)]
    assert len(set(keys)) == 3
    assert events(store) == [("created", "1", 1), ("updated", "1", 2), ("updated", "1", 3)]


def test_duplicate_id_within_one_page_keeps_the_later_copy(store: Engine) -> None:
    counts = write_page(store, SCOPE, [user("1", "old@example.org"), user("1", "new@example.org")], next_request=None)
    assert counts.created == 1
    (event,) = rows(store, OutboxEvent)
    assert orjson.loads(event.record)["email"] == "new@example.org"
    assert entries(store)["1"].payload_hash == payload_hash(user("1", "new@example.org").record)


@pytest.mark.parametrize(("next_request", "complete"), [('{"after": "2"}', False), (None, True)])
def test_checkpoint_advances_with_the_page(store: Engine, next_request: str | None, complete: bool) -> None:
    write_page(store, SCOPE, [user("1"), user("2")], next_request='{"after": "1"}')
    write_page(store, SCOPE, [user("3")], next_request=next_request)
    row = checkpoint(store)
    assert (row.next_request, row.pages, row.records, row.complete) == (next_request, 2, 3, complete)


def test_a_failing_checkpoint_commits_nothing_of_the_page(store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ledger, "advance", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_page(store, SCOPE, [user("1")], quarantined=[("2", "{}", "bad")], next_request='{"after": "1"}')
    assert rows(store, LedgerEntry) == rows(store, OutboxEvent) == rows(store, QuarantinedRecord) == []
    assert (checkpoint(store).pages, checkpoint(store).next_request) == (0, None)


def test_quarantined_records_are_stored_with_their_raw_payload(store: Engine) -> None:
    raw = orjson.dumps({"id": "7", "properties": {"email": "x"}}).decode()
    counts = write_page(
        store, SCOPE, [user("1")], quarantined=[("7", raw, "UDM field 'id': too short")], next_request=None
    )
    assert (counts.created, counts.quarantined) == (1, 1)
    (row,) = rows(store, QuarantinedRecord)
    assert (row.external_id, row.raw, row.run_id) == ("7", raw, "run-1")
    assert "UDM field 'id'" in row.error and "7" not in entries(store)


@pytest.mark.parametrize(
    "other",
    [
        replace(SCOPE, tenant_id="globex"),
        replace(SCOPE, connection_id="acme-salesforce"),
        replace(SCOPE, data_source="contacts"),
    ],
)
def test_idempotency_key_depends_on_every_part_of_the_scope(other: PageScope) -> None:
    assert idempotency_key(SCOPE, "1", 1) == idempotency_key(replace(SCOPE, run_id="another run"), "1", 1)
    assert idempotency_key(SCOPE, "1", 1) != idempotency_key(other, "1", 1)
    assert idempotency_key(SCOPE, "1", 1) not in {idempotency_key(SCOPE, "1", 2), idempotency_key(SCOPE, "2", 1)}


def test_payload_hash_ignores_key_order() -> None:
    assert payload_hash({"a": 1, "b": [1, 2]}) == payload_hash({"b": [1, 2], "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": "1"})


def test_sweep_turns_unseen_records_into_deleted_events(store: Engine) -> None:
    write_page(store, SCOPE, [user("1"), user("2"), user("3")], next_request=None)
    write_page(store, NEXT_RUN, [user("1"), user("2")], next_request=None)
    result = sweep(store, NEXT_RUN, max_share=0.5)
    assert (result.live, result.stale, result.deleted, result.refused) == (3, 1, 1, False)
    assert result.deleted_ids == ["3"] and events(store)[-1] == ("deleted", "3", 2)
    assert rows(store, OutboxEvent)[-1].record is None
    assert entries(store)["3"].deleted_at is not None and entries(store)["3"].version == 2


def test_sweep_after_a_full_enumeration_deletes_nothing(store: Engine) -> None:
    write_page(store, SCOPE, [user("1"), user("2")], next_request=None)
    result = sweep(store, SCOPE, max_share=0.0)
    assert (result.live, result.stale, result.deleted, result.refused) == (2, 0, 0, False)
    assert len(events(store)) == 2


def test_sweep_guard_refuses_a_mass_delete_and_says_why(store: Engine) -> None:
    write_page(store, SCOPE, [user(str(n)) for n in range(4)], next_request=None)
    write_page(store, NEXT_RUN, [user("0")], next_request=None)
    result = sweep(store, NEXT_RUN, max_share=0.5)
    assert result.refused and (result.live, result.stale, result.deleted) == (4, 3, 0)
    assert "refused to delete 3 of 4 live records" in result.reason and "force_delete" in result.reason
    assert all(row.deleted_at is None for row in entries(store).values()) and len(events(store)) == 4


def test_sweep_with_force_deletes_past_the_guard(store: Engine) -> None:
    write_page(store, SCOPE, [user(str(n)) for n in range(4)], next_request=None)
    write_page(store, NEXT_RUN, [user("0")], next_request=None)
    result = sweep(store, NEXT_RUN, max_share=0.5, force=True)
    assert (result.refused, result.deleted) == (False, 3)
    assert sorted(e for kind, e, _ in events(store) if kind == "deleted") == ["1", "2", "3"]


def test_deleted_record_seen_again_is_created_with_the_next_version(store: Engine) -> None:
    write_page(store, SCOPE, [user("1"), user("2")], next_request=None)
    write_page(store, NEXT_RUN, [user("1")], next_request=None)
    sweep(store, NEXT_RUN, max_share=1.0)
    counts = write_page(store, replace(SCOPE, generation="gen-3"), [user("2")], next_request=None)
    assert (counts.created, counts.updated) == (1, 0)
    assert events(store)[-2:] == [("deleted", "2", 2), ("created", "2", 3)]
    assert entries(store)["2"].deleted_at is None


def test_deleted_record_is_not_swept_again(store: Engine) -> None:
    write_page(store, SCOPE, [user("1"), user("2")], next_request=None)
    write_page(store, NEXT_RUN, [user("1")], next_request=None)
    sweep(store, NEXT_RUN, max_share=1.0)
    again = sweep(store, NEXT_RUN, max_share=1.0)
    assert (again.live, again.stale, again.deleted) == (1, 0, 0)
    assert [kind for kind, _, _ in events(store)].count("deleted") == 1


def test_known_record_that_now_fails_mapping_is_not_swept(store: Engine) -> None:
    write_page(store, SCOPE, [user("1"), user("2")], next_request=None)
    write_page(store, NEXT_RUN, [user("1")], quarantined=[("2", '{"id": "2"}', "email is invalid")], next_request=None)
    result = sweep(store, NEXT_RUN, max_share=1.0)
    assert (result.stale, result.deleted) == (0, 0)
    assert entries(store)["2"].deleted_at is None


def test_sweep_leaves_other_connections_alone(store: Engine) -> None:
    other = replace(SCOPE, connection_id="acme-salesforce")
    write_page(store, other, [user("9")], next_request=None)
    write_page(store, SCOPE, [user("1")], next_request=None)
    result = sweep(store, replace(NEXT_RUN, connection_id="acme-hubspot"), max_share=1.0)
    assert result.deleted_ids == ["1"] and entries(store)["9"].deleted_at is None


def test_raw_payload_is_kept_and_follows_the_source_even_when_the_mapped_record_is_unchanged(store: Engine) -> None:
    write_page(store, SCOPE, [user("1")._replace(raw='{"id":"1","v":1}')], next_request=None)
    counts = write_page(store, NEXT_RUN, [user("1")._replace(raw='{"id":"1","v":2}')], next_request=None)
    assert counts.unchanged == 1 and entries(store)["1"].raw == '{"id":"1","v":2}'


def test_a_record_that_maps_again_leaves_the_quarantine_and_a_new_failure_replaces_the_old(store: Engine) -> None:
    write_page(store, SCOPE, [], quarantined=[("1", "{}", "first"), ("2", "{}", "first")], next_request=None)
    write_page(store, NEXT_RUN, [user("1")], quarantined=[("2", "{}", "second")], next_request=None)
    assert [(row.external_id, row.error, row.run_id) for row in rows(store, QuarantinedRecord)] == [
        ("2", "second", "run-2")
    ]


def test_a_quarantined_record_deleted_at_the_source_leaves_the_quarantine(store: Engine) -> None:
    ledger.write_changes(store, SCOPE, [user("1")], [], quarantined=[("2", "{}", "bad")])
    ledger.write_changes(store, SCOPE, [], ["2"])
    assert rows(store, QuarantinedRecord) == []


def test_changes_commit_with_the_removal_of_the_inbox_rows_they_came_from(store: Engine) -> None:
    heard = [HeardChange("acme", "acme-hubspot", "users", external_id, "upsert", "webhook") for external_id in "12"]
    inbox.add(store, heard)
    rows_ = inbox.pending(store, "acme-hubspot", 10)
    ledger.write_changes(store, SCOPE, [user("1")], ["2"], handled_inbox_ids=[rows_[0].id])
    assert [row.external_id for row in inbox.pending(store, "acme-hubspot", 10)] == ["2"]
    assert events(store) == [("created", "1", 1)]


def test_live_count_counts_the_records_the_app_holds(store: Engine) -> None:
    assert live_count(store, "acme-hubspot", "users") == 0
    write_page(store, SCOPE, [user("1"), user("2"), user("3")], next_request=None)
    ledger.write_changes(store, SCOPE, [], ["3"])
    assert live_count(store, "acme-hubspot", "users") == 2 and live_count(store, "acme-other", "users") == 0
