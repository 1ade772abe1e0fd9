"""The simulated app's clock: the real time plus an offset that tests move forward (`/_sim/clock`).

Every time a simulator hands out or judges (record timestamps, token ages, retention windows, rate-limit
windows) is read here, so advancing the clock by 8 days expires a 7-day token, and a 2-second burst
window empties when the clock moves 2 seconds:

    sim.clock.advance(8 * 86_400)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

__all__ = ["SimClock"]


class SimClock:
    """Wall time (`time`) and a monotonic time (`monotonic`, for rate windows), both moved by `advance`."""

    def __init__(self, monotonic: Callable[[], float] | None = None) -> None:
        self.offset = 0.0
        self._monotonic = monotonic

    def time(self) -> float:
        """Epoch seconds as the simulated app sees them."""
        return time.time() + self.offset  # looked up on each call, so a test may patch time.time

    def now_ms(self) -> int:
        return int(self.time() * 1000)

    def monotonic(self) -> float:
        return (self._monotonic() if self._monotonic is not None else time.monotonic()) + self.offset

    def today(self) -> date:
        """The UTC calendar day of the simulated wall time."""
        return datetime.fromtimestamp(self.time(), UTC).date()

    def advance(self, seconds: float) -> None:
        """Move the simulated time forward (or back, with a negative amount)."""
        self.offset += seconds
