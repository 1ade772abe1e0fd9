"""One run at a time per connection, on a real Prefect server: the slot, the wait, the timeout, the memory."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from prefect._internal.concurrency.services import _QueueServiceBase
from prefect.client.orchestration import PrefectClient, get_client

import flows.slot_lease
from flows.single_flight import SlotTaken, single_flight
from flows.slot_lease import SlotLost


def _connection() -> str:
    return f"sf-{uuid.uuid4().hex[:10]}"


def _services() -> int:
    """Prefect's live queue services (each `concurrency()` limit name keeps one)."""
    instances: dict[int, object] = vars(_QueueServiceBase)["_instances"]
    return len(instances)


async def _active_slots(connection: str) -> int:
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(f"inlet-connection-{connection}")
    return limit.active_slots


async def test_a_second_holder_enters_only_after_the_first_leaves(prefect_api: str) -> None:
    connection, order = _connection(), []

    async def hold(who: str, seconds: float) -> None:
        async with single_flight(connection):
            order.append(f"{who} in")
            assert await _active_slots(connection) == 1
            await asyncio.sleep(seconds)
            order.append(f"{who} out")

    first = asyncio.create_task(hold("first", 1.5))
    while "first in" not in order:  # progress, not a guess at time: the first holds the slot before the second asks
        assert not first.done(), "the first holder ended without entering"
        await asyncio.sleep(0.05)
    await asyncio.gather(first, hold("second", 0))
    assert order == ["first in", "first out", "second in", "second out"]
    assert await _active_slots(connection) == 0


async def test_no_slot_within_the_wait_fails_naming_the_limit_and_frees_nothing(prefect_api: str) -> None:
    connection = _connection()
    async with single_flight(connection):
        with pytest.raises(TimeoutError, match=f"inlet-connection-{connection}"):
            async with single_flight(connection, wait_seconds=1):
                pass
        assert await _active_slots(connection) == 1  # the holder keeps its slot
    assert await _active_slots(connection) == 0


async def test_a_failing_run_gives_its_slot_back(prefect_api: str) -> None:
    connection = _connection()
    with pytest.raises(RuntimeError):
        async with single_flight(connection):
            raise RuntimeError("the run failed")
    assert await _active_slots(connection) == 0


async def test_many_connections_leave_no_service_behind(prefect_api: str) -> None:
    """`concurrency()` would keep an acquisition service per limit name alive for good (MBs per connection in
    a long-lived task worker); single_flight leaves none."""
    before = _services()
    connections = [_connection() for _ in range(20)]
    for connection in connections:
        async with single_flight(connection):
            pass
    assert _services() == before
    assert [await _active_slots(c) for c in connections] == [0] * 20


async def test_the_lease_is_renewed_while_held_and_a_failed_renewal_stops_the_holder(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewals come every 0.6 s of a 60 s lease here (the first one then, not on entry); while they go through the
    slot stays taken, and the first that fails cancels the holder with SlotLost and gives the slot back."""
    connection, renewals, refuse = _connection(), [], False
    renew = PrefectClient.renew_concurrency_lease

    async def counted(self: PrefectClient, lease_id: uuid.UUID, lease_duration: float) -> Any:
        if refuse:
            raise RuntimeError("the server lost the lease")
        renewals.append(lease_id)
        return await renew(self, lease_id=lease_id, lease_duration=lease_duration)

    monkeypatch.setattr(flows.slot_lease, "_RENEW_AT", 0.01)
    monkeypatch.setattr(PrefectClient, "renew_concurrency_lease", counted)
    with pytest.raises(SlotLost, match="the server lost the lease"):
        async with single_flight(connection):
            while len(renewals) < 2:  # progress: two renewals went through
                await asyncio.sleep(0.05)
            with pytest.raises(SlotTaken):
                async with single_flight(connection, wait_seconds=0):
                    pass
            refuse = True
            await asyncio.Event().wait()  # only the lost lease ends this
    assert len(set(renewals)) == 1 and await _active_slots(connection) == 0
