"""Faults waiting for a simulator's next API requests (`/_sim/faults`): throttling, errors, broken bodies."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["COUNTED", "Faults"]

COUNTED = ("status_429", "status_500", "malformed", "repeat_token")  # faults given as counts, which add up
_SECONDS = ("retry_after", "slow_seconds")


@dataclass
class Faults:
    """Faults waiting for the next API requests; counts add up and are used 429 → 5xx → malformed."""

    status_429: int = 0
    retry_after: float = 1.0  # seconds, for APIs that send Retry-After
    status_500: int = 0
    malformed: int = 0
    slow_seconds: float = 0.0  # delays every served request until reset()
    expire_tokens: bool = False  # every incremental token handed out so far is refused as expired
    repeat_token: int = 0  # the next N pages hand out the same next-page token again

    def take(self) -> str | None:
        for name in ("status_429", "status_500", "malformed"):
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return name
        return None

    def add(self, **faults: Any) -> None:
        """Add faults after checking them: counts add up, flags and seconds replace; ValueError if unknown or bad."""
        for name, value in faults.items():
            if not hasattr(self, name):
                raise ValueError(f"unknown fault {name!r}; known: {sorted(asdict(Faults()))}")
            if name in COUNTED:
                value = getattr(self, name) + _count(name, value)
            elif name in _SECONDS and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
            elif name == "expire_tokens" and not isinstance(value, bool):
                raise ValueError(f"expire_tokens must be true or false, got {value!r}")
            setattr(self, name, value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value
