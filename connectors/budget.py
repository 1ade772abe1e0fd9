"""A connection's request budget: at most N requests in any window of W seconds, so one tenant's import
stays under the app's limit. In-process; across processes the flows use a Prefect rate limit."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Awaitable, Callable

__all__ = ["RequestBudget", "full_jitter"]


class RequestBudget:
    """A sliding-window limiter shared by every request of one connector instance."""

    def __init__(
        self,
        requests: int,
        per_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds spent waiting for the budget, for run summaries

    async def acquire(self) -> None:
        """Wait until one more request fits in the window, then count it."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.per_seconds:
                    self._sent.popleft()
                if len(self._sent) < self.requests:
                    self._sent.append(now)
                    return
                wait = self._sent[0] + self.per_seconds - now
                self.waited += wait
                await self._sleep(wait)


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """uniform(0, min(cap, base * 2**attempt)): AWS's "full jitter". One line, so not worth a library; and the
    attempt count of a deferred batch lives in the outbox across runs, which tenacity/stamina do not model."""
    return (rng or random).uniform(0, min(cap, base * 2 ** min(attempt, 60)))
