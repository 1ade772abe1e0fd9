"""Waiting on progress, not on the clock: CI shares 2 cores, so a wait fails only when work stops moving.

`wait_for_progress(measure, stall_seconds=...)` calls `measure()` until it reports done. Each call returns
`(done, progress, detail)`: `progress` is any value that changes while work is being done (runs finished,
records matching). The wait fails only when `progress` has not changed for `stall_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Stalled", "wait_for_progress"]


class Stalled(AssertionError):
    """The awaited work stopped moving: its progress figure did not change for the stall window."""


def wait_for_progress(
    measure: Callable[[], tuple[bool, Hashable, T]],
    *,
    stall_seconds: float,
    interval: float = 1.0,
    what: str = "work",
) -> T:
    """Poll `measure` until done; fail when its progress figure stays the same for `stall_seconds`."""
    last_progress: Hashable = object()
    last_change = time.monotonic()
    while True:
        done, progress, detail = measure()
        if done:
            return detail
        now = time.monotonic()
        if progress != last_progress:
            last_progress, last_change = progress, now
        elif now - last_change > stall_seconds:
            raise Stalled(f"{what} made no progress for {stall_seconds:.0f} s: {detail}")
        time.sleep(interval)
