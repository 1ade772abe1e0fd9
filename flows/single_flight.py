"""One run at a time per connection, with a Prefect global concurrency limit named after it.

Within one process (a task worker runs many `apply-inbox` runs), runs of a connection first take turns on a
local lock: the server's slot is then uncontended (Prefect polls a contended slot with a Retry-After of
seconds), and a run that finds another already waiting leaves the work to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

__all__ = ["release", "single_flight", "take_turn"]


@dataclass
class _Turns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: bool = False


_turns: dict[tuple[int, str], _Turns] = {}
_known_limits: set[str] = set()


@asynccontextmanager
async def take_turn(connection: str) -> AsyncIterator[bool]:
    """Wait for this process's turn on the connection: True when it is ours; False, at once, when another run
    already waits for the next turn (it reads the inbox after the current run, so it will see our changes)."""
    turns = _turns.setdefault((id(asyncio.get_running_loop()), connection), _Turns())
    if turns.waiting:
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
async def single_flight(connection: str, lease_seconds: float = 60, wait_seconds: float = 900) -> AsyncIterator[None]:
    """Hold the connection's slot (`inlet-connection-<id>`, limit 1, created on first use).

    Prefect renews the lease while the run lives; a killed run's slot frees itself `lease_seconds` later
    (Prefect allows 60 s at least; its default of 300 s would stall the connection for five minutes).
    After `wait_seconds` without the slot the run fails with a TimeoutError naming the limit, instead of
    waiting forever for a slot that a crashed holder's server never reclaimed
    (`prefect gcl update inlet-connection-<id> --active-slots 0` frees it by hand).
    """
    name = f"inlet-connection-{connection}"
    if name not in _known_limits:
        await _create_limit(name)
        _known_limits.add(name)
    async with concurrency(name, occupy=1, strict=True, lease_duration=lease_seconds, timeout_seconds=wait_seconds):
        yield


async def _create_limit(name: str) -> None:
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
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
