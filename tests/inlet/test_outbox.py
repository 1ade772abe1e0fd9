"""The outbox: batches in id order per connection and data source, nothing overtakes a deferred event."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from inlet.delivery import Handoff
from inlet.store import MappedRecord, OutboxEvent, PageScope, PendingEvent, outbox, utcnow, write_page

USERS = PageScope("acme", "acme-hubspot", "users", generation="gen-1", run_id="run-1")
CONTACTS = replace(USERS, data_source="contacts")
OTHER = replace(USERS, connection_id="acme-salesforce")
LATER = utcnow() + timedelta(hours=1)


def put(engine: Engine, scope: PageScope, *ids: str) -> None:
    records = [MappedRecord(i, {"email": f"{i}@example.org"}, None) for i in ids]
    write_page(engine, scope, records, next_request=None)


def batch_ids(engine: Engine, connection_id: str = "acme-hubspot", limit: int = 100) -> list[str]:
    return [e.external_id for e in outbox.pending_batch(engine, connection_id, limit)]


def ids_of(engine: Engine, *external_ids: str) -> list[int]:
    table = OutboxEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__
    with engine.connect() as db:
        query = select(table.c.id).where(table.c.external_id.in_(external_ids)).order_by(table.c.id)
        return list(db.execute(query).scalars())


def test_pending_batch_is_in_id_order_up_to_the_limit(engine: Engine) -> None:
    put(engine, USERS, "3", "1", "2")
    put(engine, USERS, "0")
    assert batch_ids(engine) == ["3", "1", "2", "0"]
    assert batch_ids(engine, limit=2) == ["3", "1"]
    assert [e.id for e in outbox.pending_batch(engine, "acme-hubspot", 100)] == ids_of(engine, "0", "1", "2", "3")


def test_batch_holds_one_data_source_starting_with_the_oldest(engine: Engine) -> None:
    put(engine, USERS, "u1")
    put(engine, CONTACTS, "c1")
    put(engine, USERS, "u2")
    assert batch_ids(engine) == ["u1", "u2"]
    outbox.ack(engine, ids_of(engine, "u1", "u2"))
    assert batch_ids(engine) == ["c1"]


def test_batch_belongs_to_one_connection(engine: Engine) -> None:
    put(engine, OTHER, "s1")
    put(engine, USERS, "h1")
    assert batch_ids(engine) == ["h1"]
    assert batch_ids(engine, "acme-salesforce") == ["s1"]
    assert batch_ids(engine, "nobody") == []


def test_deferred_oldest_event_blocks_younger_ones(engine: Engine) -> None:
    put(engine, USERS, "1", "2")
    put(engine, USERS, "3")
    outbox.defer(engine, ids_of(engine, "1", "2"), "503", next_attempt_at=LATER)
    assert batch_ids(engine) == []
    after = outbox.pending_batch(engine, "acme-hubspot", 100, now=LATER + timedelta(seconds=1))
    assert [e.external_id for e in after] == ["1", "2", "3"]


def test_deferred_younger_event_waits_but_the_older_ones_go(engine: Engine) -> None:
    put(engine, USERS, "1", "2", "3")
    outbox.defer(engine, ids_of(engine, "3"), "503", next_attempt_at=LATER)
    assert batch_ids(engine) == ["1", "2"]


def test_ack_removes_the_events(engine: Engine) -> None:
    put(engine, USERS, "1", "2")
    outbox.ack(engine, ids_of(engine, "1"))
    assert batch_ids(engine) == ["2"]
    assert outbox.counts(engine).pending == 1


def test_park_keeps_a_dead_letter_with_the_answer(engine: Engine) -> None:
    put(engine, USERS, "1", "2")
    outbox.park(engine, ids_of(engine, "1"), "422: " + "x" * 5000)
    assert batch_ids(engine) == ["2"]
    dead = [e for e in _all(engine) if e.status == "dead"]
    assert [(e.external_id, e.attempts, len(e.last_error or "")) for e in dead] == [("1", 1, 4000)]
    assert dead[0].last_error is not None and dead[0].last_error.startswith("422: x")


def test_defer_counts_the_attempt_and_keeps_the_error(engine: Engine) -> None:
    put(engine, USERS, "1")
    for _ in range(2):
        outbox.defer(engine, ids_of(engine, "1"), "connection refused", next_attempt_at=None)
    (event,) = _all(engine)
    assert (event.status, event.attempts, event.last_error) == ("pending", 2, "connection refused")
    assert batch_ids(engine) == ["1"]


@pytest.mark.parametrize(("connection_id", "expected"), [(None, (2, 1)), ("acme-hubspot", (1, 1)), ("x", (0, 0))])
def test_counts_pending_and_dead(engine: Engine, connection_id: str | None, expected: tuple[int, int]) -> None:
    put(engine, USERS, "1", "2")
    put(engine, OTHER, "3")
    outbox.park(engine, ids_of(engine, "1"), "400")
    result = outbox.counts(engine, connection_id)
    assert (result.pending, result.dead) == expected
    assert (result.oldest_pending is None) == (expected[0] == 0)


def test_next_attempt_is_the_earliest_deferred_time(engine: Engine) -> None:
    put(engine, USERS, "1", "2")
    assert outbox.next_attempt(engine, "acme-hubspot") is None
    outbox.defer(engine, ids_of(engine, "2"), "503", next_attempt_at=LATER + timedelta(minutes=5))
    outbox.defer(engine, ids_of(engine, "1"), "503", next_attempt_at=LATER)
    when = outbox.next_attempt(engine, "acme-hubspot")
    assert when is not None and when.replace(tzinfo=None) == LATER.replace(tzinfo=None)
    assert outbox.next_attempt(engine, "acme-hubspot", now=LATER + timedelta(hours=1)) is None


def _all(engine: Engine) -> list[OutboxEvent]:
    table = OutboxEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__
    with engine.connect() as db:
        return [OutboxEvent.model_validate(row._mapping) for row in db.execute(select(table).order_by(table.c.id))]


def test_park_records_holds_the_later_events_of_the_same_record(engine: Engine) -> None:
    put(engine, USERS, "1", "2")
    write_page(
        engine, replace(USERS, generation="gen-3"), [MappedRecord("1", {"email": "new"}, None)], next_request=None
    )
    first = outbox.pending_batch(engine, "acme-hubspot", 1)
    parked = outbox.park_records(engine, first, "422: bad email")
    assert len(parked) == 2 and batch_ids(engine) == ["2"]
    held = [e for e in outbox.entries(engine, "dead") if e.id != first[0].id]
    assert held[0].last_error is not None and held[0].last_error.startswith("held behind a dead letter")


def test_a_new_event_of_a_record_with_a_dead_letter_is_held(engine: Engine) -> None:
    put(engine, USERS, "1", "2")
    outbox.park(engine, ids_of(engine, "1"), "422")
    write_page(
        engine, replace(USERS, generation="gen-2"), [MappedRecord("1", {"email": "new"}, None)], next_request=None
    )
    batch = outbox.pending_batch(engine, "acme-hubspot", 10)
    assert [e.external_id for e in outbox.held_by_dead(engine, batch)] == ["1"]


def test_replay_makes_dead_letters_due_again_and_purge_deletes_old_ones(engine: Engine) -> None:
    put(engine, USERS, "1", "2", "3")
    put(engine, OTHER, "9")
    outbox.park(engine, ids_of(engine, "1", "2", "9"), "422")
    assert outbox.replay(engine, ids=ids_of(engine, "1")) == 1 and batch_ids(engine) == ["1", "3"]
    assert outbox.replay(engine, tenant_id="nobody") == 0
    assert outbox.purge(engine, utcnow() - timedelta(hours=1)) == 0
    assert outbox.purge(engine, utcnow() + timedelta(seconds=1)) == 2
    assert outbox.entries(engine, "dead") == []


def test_due_connections_skips_connections_that_only_wait(engine: Engine) -> None:
    put(engine, USERS, "1")
    put(engine, OTHER, "2")
    outbox.defer(engine, ids_of(engine, "2"), "503", next_attempt_at=LATER)
    assert outbox.due_connections(engine) == [("acme", "acme-hubspot")]
    assert outbox.counts(engine, "acme-salesforce").deferred == 1


def test_one_drain_claims_a_batch_and_another_gets_none_until_it_is_acknowledged(engine: Engine) -> None:
    put(engine, USERS, "1", "2", "3")
    first = outbox.claim_batch(engine, "acme-hubspot", 2, "here:1:a", 60)
    assert first is not None and [e.external_id for e in first] == ["1", "2"]
    assert outbox.claim_batch(engine, "acme-hubspot", 10, "here:1:b", 60) is None  # "1" is being sent by a
    again = outbox.claim_batch(engine, "acme-hubspot", 10, "here:1:a", 60)  # the owner's own claim holds it
    assert again is not None and [e.external_id for e in again] == ["1", "2", "3"]
    outbox.ack(engine, [e.id for e in again])
    assert outbox.claim_batch(engine, "acme-hubspot", 10, "here:1:b", 60) == []


def test_a_lapsed_claim_and_a_deferred_batch_free_their_events(engine: Engine) -> None:
    put(engine, USERS, "1", "2")
    claimed = outbox.claim_batch(engine, "acme-hubspot", 1, "here:1:a", 60)
    assert claimed is not None
    lapsed = outbox.claim_batch(engine, "acme-hubspot", 10, "here:1:b", 60, now=utcnow() + timedelta(seconds=61))
    assert lapsed is not None and [e.external_id for e in lapsed] == ["1", "2"]
    outbox.defer(engine, [e.id for e in lapsed], "503", next_attempt_at=None)
    freed = outbox.claim_batch(engine, "acme-hubspot", 10, "here:1:c", 60)
    assert freed is not None and len(freed) == 2


def test_the_claim_of_a_process_gone_from_this_host_is_void_at_once(engine: Engine) -> None:
    import socket
    import subprocess
    import sys

    put(engine, USERS, "1")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    owner = f"{socket.gethostname()}:{int(gone.stdout)}:dead"
    assert outbox.claim_batch(engine, "acme-hubspot", 10, owner, 3600) is not None
    taken = outbox.claim_batch(engine, "acme-hubspot", 10, outbox.claimant(), 3600)
    assert taken is not None and [e.external_id for e in taken] == ["1"]
    alive = outbox.claimant()  # this process: its claim holds for another drain of it
    assert outbox.claim_batch(engine, "acme-hubspot", 10, alive, 3600, now=utcnow() + timedelta(hours=2))
    assert outbox.claim_batch(engine, "acme-hubspot", 10, outbox.claimant(), 3600) is None


def test_a_claimed_write_lists_its_events_as_the_outbox_holds_them(engine: Engine) -> None:
    claim = outbox.Claim(outbox.claimant(), 60.0)
    records = [MappedRecord(i, {"email": f"{i}@example.org"}, None) for i in "312"]
    write_page(engine, USERS, records, next_request="x", claim=claim)
    held = outbox.pending_batch(engine, "acme-hubspot", 100)
    assert [e[:11] for e in claim.written] == [e[:11] for e in held]  # all but created_at, in id order
    assert outbox.claim_batch(engine, "acme-hubspot", 100, outbox.claimant(), 60.0) is None  # no other drain takes them


def test_a_batch_from_memory_goes_only_when_nothing_of_the_connection_waits_before_or_in_it(engine: Engine) -> None:
    put(engine, USERS, "0")
    claim = outbox.Claim(outbox.claimant(), 60.0)
    write_page(engine, USERS, [MappedRecord(i, {"email": i}, None) for i in "123"], next_request="x", claim=claim)
    assert not outbox.leads(engine, claim.written)  # event "0" is older
    outbox.ack(engine, ids_of(engine, "0"))
    assert outbox.leads(engine, claim.written) and outbox.leads(engine, claim.written[:2])
    assert not outbox.leads(engine, claim.written[1:])  # "1" would be overtaken


async def test_the_writer_waits_while_the_hand_off_is_full_and_never_once_it_is_closed() -> None:
    handoff = Handoff(60.0, capacity=2)
    events = [PendingEvent(i, "", "", "", "", str(i), "created", "{}", None, "", 0, utcnow()) for i in range(4)]
    await handoff.put(events[:2])
    blocked = asyncio.ensure_future(handoff.put(events[2:]))
    await asyncio.sleep(0.01)
    assert not blocked.done() and len(handoff) == 2
    assert [e.id for e in handoff.take(3)[1]] == [0, 1]
    await blocked
    assert [e.id for e in handoff.take(1)[1]] == [2] and len(handoff) == 1
    await handoff.put(events[:2])  # 3 held: over capacity
    waiting = asyncio.ensure_future(handoff.put(events))
    handoff.close()
    await waiting
    assert len(handoff) == 0 and handoff.claim() is None
