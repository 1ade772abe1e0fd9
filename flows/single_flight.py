"""One run at a time per connection, with a Prefect global concurrency limit named after it.

Within one process (a task worker runs many `apply-inbox` runs), runs of a connection first take turns on a
local lock: the server's slot is then uncontended (Prefect polls a contended slot with a Retry-After of
seconds), and a run that finds another already waiting, or one keeping the connection warm (`flows.warm`),
leaves the work to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
from prefect.exceptions import ObjectAlreadyExists

from flows.slot_lease import kept
from flows.slot_wanted import wanting

__all__ = ["SlotTaken", "release", "single_flight", "staying_warm", "take_turn"]


@dataclass
class _Turns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: bool = False
    warm: bool = False  # the run holding the turn watches the inbox and applies what arrives


class SlotTaken(TimeoutError):
    """Another run held the connection's slot for the whole wait (a TimeoutError, as callers have long caught)."""


_turns: dict[tuple[int, str], _Turns] = {}
_PROMPT_SECONDS = 10.0  # of a wait for a connection's slot, asked every second (a warm holder gives it up)


@asynccontextmanager
async def take_turn(connection: str) -> AsyncIterator[bool]:
    """Wait for this process's turn on the connection: True when it is ours; False, at once, when another run
    already waits for the next turn (it reads the inbox after the current run, so it will see our changes) or the
    current one keeps the connection warm (it watches the inbox, and looks once more when it stops)."""
    turns = _turns_of(connection)
    if turns.waiting or turns.warm:
        yield False
        return
    turns.waiting = True
    try:
        await turns.lock.acquire()
    finally:
        turns.waiting = False
    try:
        yield True
    finally:
        turns.lock.release()


@asynccontextmanager
async def staying_warm(connection: str) -> AsyncIterator[None]:
    """While inside, runs of the connection that start in this process leave their changes to the caller, which
    must hold the connection's turn and look at the inbox once more after leaving."""
    turns = _turns_of(connection)
    assert turns.lock.locked(), "only the run holding the connection's turn keeps it warm"
    turns.warm = True
    try:
        yield
    finally:
        turns.warm = False


def _turns_of(connection: str) -> _Turns:
    return _turns.setdefault((id(asyncio.get_running_loop()), connection), _Turns())


@asynccontextmanager
async def single_flight(connection: str, lease_seconds: float = 60, wait_seconds: float = 900) -> AsyncIterator[None]:
    """Hold the connection's slot (`inlet-connection-<id>`, limit 1, created on first use).

    The lease is renewed while the run lives (`flows.slot_lease`: SlotLost, the body cancelled, when a renewal
    fails); a killed run's slot frees itself `lease_seconds` later
    (Prefect allows 60 s at least; its default of 300 s would stall the connection for five minutes).
    After `wait_seconds` without the slot the run fails with SlotTaken (a TimeoutError) naming the limit, instead of
    waiting forever for a slot that a crashed holder's server never reclaimed
    (`prefect gcl update inlet-connection-<id> --active-slots 0` frees it by hand).

    This takes the slot through the client's lease calls, not `prefect.concurrency.asyncio.concurrency()`:
    that keeps an acquisition service alive per distinct limit name (about 2 MB each in Prefect 3.9), so a
    task worker serving thousands of connections would grow by gigabytes.
    """
    lease_id = await _acquire(connection, lease_seconds, wait_seconds)
    try:
        async with kept(lease_id, lease_seconds):
            yield
    finally:
        async with get_client() as client:
            await client.release_concurrency_slots_with_lease(lease_id)


async def _acquire(connection: str, lease_seconds: float, wait_seconds: float) -> UUID:
    """The lease on the connection's slot. While it is taken, the wait is said (`flows.slot_wanted`: a run keeping the
    connection warm gives the slot up) and the slot asked for again every second for `_PROMPT_SECONDS`, then as the
    server's Retry-After says (it grows with the holders' time on the slot, up to 30 s)."""
    name = f"inlet-connection-{connection}"
    started, said = time.monotonic(), False
    async with get_client() as client, AsyncExitStack() as waiting:
        while True:
            try:
                answer = await client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode="concurrency", lease_duration=lease_seconds
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:
                    raise
                waited = time.monotonic() - started
                if waited >= wait_seconds:
                    raise SlotTaken(f"no free slot on {name} within {wait_seconds:.0f}s") from None
                if not said:
                    await waiting.enter_async_context(wanting(client, connection, lease_seconds))
                    said = True
                retry_after = float(exc.response.headers.get("Retry-After", 1))
                if waited < _PROMPT_SECONDS:
                    retry_after = min(retry_after, 1.0)
                await asyncio.sleep(min(retry_after, wait_seconds - waited))
                continue
            granted = ConcurrencyLimitWithLeaseResponse.model_validate(answer.json())
            if granted.limits:
                return granted.lease_id
            await _create_limit(client, name)  # the first run of this connection; then ask again


async def _create_limit(client: PrefectClient, name: str) -> None:
    try:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    except ObjectAlreadyExists:
        pass  # another run created it first


async def release(connection: str) -> None:
    """Free a connection's slot (what an operator does after a crash, or the lease expiry does)."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    async with get_client() as client:
        await client.update_global_concurrency_limit(
            f"inlet-connection-{connection}", GlobalConcurrencyLimitUpdate(active_slots=0)
        )
