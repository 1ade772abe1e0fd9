"""The per-record budget of a mapping, so no tenant's template can loop, grow or run without end.

One record's render (its UDM step and its app mapping together) may take at most `iterations` loop steps
(`{% for %}` items; a `range()` no longer than that), nest calls (macros, recursive loops) at most `depth`
deep, build no text, list or output heavier than `max_size` characters or items, and run at most
`record_seconds` from its first loop step, call or operator, checked every few of them. The time is the CPU
time of the rendering thread with garbage collection taken out: wall time would charge a template for the
machine's load, the GIL and the collector's pauses, and quarantine good records on a busy worker. A record over
budget raises `BudgetExceeded`, a RecordError: it is quarantined with the reason and the run goes on. A mapper
whose records overrun the time budget `overruns` times stops rendering for the rest of its run, so a template
holds a connection's slot for at most `overruns` x `record_seconds`.

The meter of the record being rendered lives in a context variable; code outside a render (a test calling
a template directly) gets a fresh meter with the default budget.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mappings.errors import BudgetExceeded

__all__ = [
    "MappingBudget",
    "Meter",
    "activate",
    "active",
    "budgeted",
    "budgeted_range",
    "cpu_seconds",
    "current",
    "deactivate",
    "default_meter",
    "weight",
]

_TICK_EVERY = 16  # loop steps, calls or operators between two looks at the clock
_THREAD = threading.local()  # per thread: CPU seconds spent collecting garbage, and when the last collection began


def _count_collections(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _THREAD.began = time.thread_time()
    elif hasattr(_THREAD, "began"):
        _THREAD.collecting = getattr(_THREAD, "collecting", 0.0) + time.thread_time() - _THREAD.began


gc.callbacks.append(_count_collections)


def cpu_seconds() -> float:
    """CPU time of this thread, garbage collection left out (the clock of a record's budget)."""
    return time.thread_time() - getattr(_THREAD, "collecting", 0.0)


class MappingBudget(BaseModel):
    """Limits of one record's render (INLET_MAPPING_BUDGET__RECORD_SECONDS=0.25 ...)."""

    model_config = ConfigDict(frozen=True)

    record_seconds: float = Field(0.25, gt=0, description="CPU seconds one record's render may take")
    iterations: int = Field(10_000, ge=1, description="loop steps (and the longest range) in one record")
    max_size: int = Field(100_000, ge=1, description="characters or items of any value or output a template builds")
    depth: int = Field(50, ge=1, description="calls (macros, recursive loops) nested in one another")
    overruns: int = Field(3, ge=1, description="records over the time budget before the mapper stops rendering")
    setting: str = Field("INLET_MAPPING_BUDGET", description="where the operator sets these (for messages)")


class Meter:
    """What one record's render has spent so far."""

    __slots__ = ("budget", "clock", "deadline", "depth", "steps", "ticks")

    def __init__(self, budget: MappingBudget, clock: Callable[[], float] = cpu_seconds) -> None:
        self.budget = budget
        self.clock = clock
        self.deadline = 0.0
        self.steps = self.depth = self.ticks = 0

    def start(self) -> Meter:
        """A new record: its clock starts at its first tick. A record that never ticks (plain lookups and filters,
        bounded by the size limits) never reads the clock, which costs about as much as mapping a simple record."""
        self.deadline = 0.0
        self.steps = self.depth = self.ticks = 0
        return self

    def tick(self) -> None:
        """Refuse to go on past the record's time budget (the clock is read at the first tick, then every few)."""
        self.ticks += 1
        if self.ticks == 1:
            self.deadline = self.clock() + self.budget.record_seconds
        elif self.ticks % _TICK_EVERY == 0 and self.clock() > self.deadline:
            self.exceeded("time", f"more than {self.budget.record_seconds:g}s for one record", "RECORD_SECONDS")

    def step(self) -> None:
        """One loop iteration."""
        self.steps += 1
        if self.steps > self.budget.iterations:
            self.exceeded("iterations", f"more than {self.budget.iterations} loop iterations", "ITERATIONS")
        self.tick()

    def enter(self) -> None:
        """One call deeper (`leave` when it returns)."""
        self.depth += 1
        if self.depth > self.budget.depth:
            self.exceeded("depth", f"calls nested more than {self.budget.depth} deep (recursion)", "DEPTH")

    def leave(self) -> None:
        self.depth -= 1

    def size(self, size: int, what: str = "a value") -> None:
        if size > self.budget.max_size:
            self.exceeded("size", f"{what} of more than {self.budget.max_size} characters or items", "MAX_SIZE")

    def exceeded(self, reason: str, detail: str, knob: str) -> None:
        raise BudgetExceeded(
            f"the mapping exceeded its per-record budget: {detail} ({self.budget.setting}__{knob})", reason=reason
        )


_DEFAULT = MappingBudget()
_CURRENT: ContextVar[Meter | None] = ContextVar("mapping_meter", default=None)


def current() -> Meter:
    """The meter of the record being rendered (outside any render, a fresh one with the default budget)."""
    return _CURRENT.get() or Meter(_DEFAULT).start()


def active() -> Meter | None:
    return _CURRENT.get()


def activate(meter: Meter) -> Token[Meter | None]:
    """Make `meter` (started) the current one; `deactivate` takes the token back."""
    return _CURRENT.set(meter.start())


def deactivate(token: Token[Meter | None]) -> None:
    _CURRENT.reset(token)


def default_meter() -> Meter:
    return Meter(_DEFAULT)


def budgeted(iterable: Iterable[Any]) -> Iterator[Any]:
    """The items of a `{% for %}` loop, each one a step of the record's budget."""
    meter = current()
    for item in iterable:
        meter.step()
        yield item


def budgeted_range(*args: int) -> range:
    """`range()` for templates: no longer than the record's iteration budget."""
    numbers = range(*args)
    meter = current()
    if len(numbers) > meter.budget.iterations:
        meter.exceeded("iterations", f"a range of {len(numbers)} numbers", "ITERATIONS")
    return numbers


def weight(value: Any, limit: int) -> int:
    """Characters and items a value holds, shared references counted each time (what printing it costs);
    the count stops soon after passing `limit`, so weighing a huge value is cheap."""
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple | Mapping):
            total += len(item)
            if total <= limit:
                pending.extend(item.values() if isinstance(item, Mapping) else item)
        else:
            total += 1
    return total
