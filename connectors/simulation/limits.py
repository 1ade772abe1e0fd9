"""Rate limits a simulator enforces in its admission: rolling windows and daily budgets on its clock.

A simulator lists, per request, the limits it charges and how many units (`SimulatorBase.charges`);
the base spends them all or, when one is spent, answers with the app's own throttling answer:

    self.burst = RollingWindow("burst", seconds=2, capacity=20, clock=self.clock)
    self.budget = DailyBudget("daily", capacity=30_000, clock=self.clock)
"""

from __future__ import annotations

import collections
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from connectors.simulation.clock import SimClock

__all__ = ["DailyBudget", "Limit", "RollingWindow"]


class Limit(Protocol):
    """A quota: how long until `units` more fit at monotonic time `now` (None: they fit), and spending them."""

    name: str

    def wait(self, units: int, now: float) -> float | None: ...

    def spend(self, units: int, now: float) -> None: ...

    def clear(self) -> None: ...


class RollingWindow:
    """`capacity` units per `seconds`, sliding: a unit spent at t comes back at t + seconds. None: unlimited.

    The window is read at one `now` per request (the admission's), so a test clock that moves on each read
    moves once per request; `used` and `remaining` report the window as the last request left it.
    """

    def __init__(self, name: str, seconds: float, capacity: int | None, clock: SimClock) -> None:
        self.name, self.seconds, self.capacity, self._clock = name, seconds, capacity, clock
        self._spent: collections.deque[tuple[float, int]] = collections.deque()

    def used(self) -> int:
        return sum(units for _, units in self._spent)

    def remaining(self) -> int:
        return max((self.capacity or 0) - self.used(), 0)

    def wait(self, units: int, now: float) -> float | None:
        while self._spent and self._spent[0][0] <= now - self.seconds:
            self._spent.popleft()
        if self.capacity is None or self.used() + units <= self.capacity:
            return None
        return (self._spent[0][0] if self._spent else now) + self.seconds - now

    def resets_in(self) -> float:
        """Seconds until the oldest spent unit comes back (a whole window when nothing is spent)."""
        return self._spent[0][0] + self.seconds - self._clock.monotonic() if self._spent else self.seconds

    def spend(self, units: int, now: float) -> None:
        if self.capacity is not None:  # an unlimited window keeps no history
            self._spent.append((now, units))

    def clear(self) -> None:
        self._spent.clear()


class DailyBudget:
    """`capacity` units per calendar day of the simulated clock, in a zone `utc_offset` seconds east of UTC;
    the count starts again at the zone's midnight."""

    def __init__(self, name: str, capacity: int, clock: SimClock, utc_offset: float = 0.0) -> None:
        self.name, self.capacity, self._clock, self._offset = name, capacity, clock, utc_offset
        self._day, self._used = self._today(), 0

    def used(self) -> int:
        if self._today() != self._day:
            self._day, self._used = self._today(), 0
        return self._used

    def remaining(self) -> int:
        return max(self.capacity - self.used(), 0)

    def wait(self, units: int, now: float) -> float | None:
        if self.used() + units <= self.capacity:
            return None
        local = datetime.fromtimestamp(self._clock.time() + self._offset, UTC)
        midnight = datetime(local.year, local.month, local.day, tzinfo=UTC) + timedelta(days=1)
        return (midnight - local).total_seconds()

    def spend(self, units: int, now: float) -> None:
        self.used()
        self._used += units

    def clear(self) -> None:
        self._day, self._used = self._today(), 0

    def _today(self) -> date:
        return datetime.fromtimestamp(self._clock.time() + self._offset, UTC).date()
