"""A Prefect concurrency lease kept while its holder runs: renewed every three quarters of its duration, the first
time then, not at once.

Prefect's `amaintain_concurrency_lease` renews the lease on entry, from a thread with a client of its own: a
server write, a thread and a connection for every hold, when most holds (a poll batch's applies, a webhook's
drain) end in well under a second, long before the lease would lapse. A renewal that fails (the server lost the
lease, or did not answer through the client's retries) cancels the holder and raises SlotLost: the slot may be
another run's by then. A killed holder renews nothing, so its slot frees itself when the lease lapses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import anyio
from prefect.client.orchestration import get_client

__all__ = ["SlotLost", "kept"]

_RENEW_AT = 0.75  # of the lease's duration, as Prefect's own renewal


class SlotLost(RuntimeError):
    """The lease on a connection's slot could not be renewed: the run stopped, as another may hold the slot now."""


@asynccontextmanager
async def kept(lease_id: UUID, lease_seconds: float) -> AsyncIterator[None]:
    """Keep the lease while inside; SlotLost, with the body cancelled, when a renewal fails."""
    lost: list[Exception] = []
    with anyio.CancelScope() as scope:
        renewing = asyncio.create_task(_renew(lease_id, lease_seconds, scope, lost))
        try:
            yield
        finally:
            renewing.cancel()
    if lost:
        raise SlotLost(f"the lease {lease_id} was not renewed ({type(lost[0]).__name__}: {lost[0]})") from lost[0]


async def _renew(lease_id: UUID, lease_seconds: float, holder: anyio.CancelScope, lost: list[Exception]) -> None:
    while True:
        await asyncio.sleep(lease_seconds * _RENEW_AT)
        try:
            async with get_client() as client:  # opened only when renewing: most holds never get here
                await client.renew_concurrency_lease(lease_id=lease_id, lease_duration=lease_seconds)
        except Exception as exc:
            lost.append(exc)
            holder.cancel()
            return
