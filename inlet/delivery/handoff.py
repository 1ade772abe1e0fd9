"""The full import's hand-off: the events a page wrote go to the run's sender from memory, not read back.

The writer commits a page's ledger rows and outbox events, the events claimed by the run's sender
(`outbox.Claim`), then `put`s them here. The sender `take`s them in id order and sends them after one check
(`outbox.leads`: nothing of the connection waits before or between them); the outbox stays the durable copy
and is read back only when the check fails, the sender stops early, or after a crash. The buffer is bounded:
the writer waits while it holds `capacity` events, so memory stays flat however long the listing is.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from inlet.store import Claim, PendingEvent, Store, outbox

__all__ = ["Handoff"]


class Handoff:
    """Events written by one run and claimed by its sender, waiting in memory in id order."""

    def __init__(self, lease_seconds: float, capacity: int) -> None:
        self.owner = outbox.claimant()  # the run's sender claims with this name
        self.lease_seconds, self.capacity = lease_seconds, capacity
        self.active = True  # False once the sender reads the outbox itself, or stopped: nothing more comes here
        self._pages: deque[tuple[float, list[PendingEvent]]] = deque()  # (when written, events)
        self._held = 0
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return self._held

    def claim(self) -> Claim | None:
        """The claim a page's write takes, or None once the hand-off is closed (the outbox is read back)."""
        return Claim(self.owner, self.lease_seconds) if self.active else None

    async def put(self, events: list[PendingEvent]) -> None:
        """Hand over a committed page's events; waits while the buffer is full and the sender still takes."""
        while self.active and self._held >= self.capacity:
            self._room.clear()
            await self._room.wait()
        if self.active and events:
            self._pages.append((time.monotonic(), events))
            self._held += len(events)

    def take(self, limit: int) -> tuple[float, list[PendingEvent]]:
        """Up to `limit` of the oldest events, and when the oldest of them was written (its claim's start)."""
        batch: list[PendingEvent] = []
        written = time.monotonic()
        while self._pages and len(batch) < limit:
            at, events = self._pages[0]
            written = min(written, at)
            room = limit - len(batch)
            batch.extend(events[:room])
            if len(events) > room:
                self._pages[0] = (at, events[room:])
            else:
                self._pages.popleft()
        self._held -= len(batch)
        self._room.set()
        return written, batch

    def release(self, engine: Store, connection_id: str) -> int:
        """After the run (its writer and sender done): free what the sender left claimed, for any later drain."""
        self.close()
        return outbox.release(engine, connection_id, self.owner)

    def close(self) -> None:
        """No more events from memory: what was handed over and not taken stays in the outbox for a drain."""
        self.active = False
        self._pages.clear()
        self._held = 0
        self._room.set()
