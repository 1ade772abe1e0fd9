"""Seeded people and their change log: what every simulator renders in its own app's shape.

The same seed gives the same people. Each mutation stamps the person with the simulated clock and the
next position in the change log, so simulators can serve "what changed since" from one sequence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from connectors.simulation.clock import SimClock

__all__ = ["EPOCH_MS", "People", "Person"]

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: seeded people are created 10 s apart from here
_FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Katherine")
_LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Ng")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")
_TITLES = ("Engineer", "Analyst", "Manager", "Director", "Designer", "Consultant", "Founder", "Researcher")
View = TypeVar("View")


@dataclass
class Person:
    """One simulated user/contact, whatever the app calls it."""

    seq: int  # creation order, stable: simulators derive their id format from it
    first: str
    last: str
    email: str
    phone: str | None
    company: str
    title: str
    created_ms: int
    modified_ms: int
    deleted_ms: int | None = None
    change: int = 0  # position in the change log of the last mutation

    @property
    def deleted(self) -> bool:
        return self.deleted_ms is not None

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"


class People:
    """Deterministic people and their change log; the same seed gives the same people."""

    def __init__(self, records: int, seed: int | str = 0, clock: SimClock | None = None) -> None:
        self._rng = random.Random(seed)
        self.clock = clock or SimClock()
        self.all: list[Person] = []
        self._clock_ms = 0
        self.last_change = 0
        self._views: dict[Any, tuple[int, Any]] = {}
        for i in range(records):
            created = EPOCH_MS + i * 10_000 + int(self._rng.random() * 10_000)
            self._add(created, created + int(self._rng.random() * 90 * 86_400_000))

    def live(self) -> list[Person]:
        return [p for p in self.all if not p.deleted]

    def get(self, seq: int) -> Person | None:
        return self.all[seq] if 0 <= seq < len(self.all) else None

    def changed_since(self, change: int) -> list[Person]:
        """People (deleted ones included) whose last mutation came after `change`, oldest change first."""
        return sorted((p for p in self.all if p.change > change), key=lambda p: p.change)

    def view(self, key: Any, build: Callable[[], View]) -> View:
        """A value derived from the people (an index, a sort order), rebuilt only after a mutation."""
        cached = self._views.get(key)
        if cached is None or cached[0] != self.last_change:
            self._views = {k: v for k, v in self._views.items() if v[0] == self.last_change}
            cached = (self.last_change, build())
            self._views[key] = cached
        value: View = cached[1]
        return value

    def create(self, n: int) -> list[Person]:
        return [self._add(now, now) for now in (self.tick() for _ in range(n))]

    def update(self, chosen: Sequence[Person]) -> list[Person]:
        for person in chosen:
            person.title = self._rng.choice([t for t in _TITLES if t != person.title])
            person.modified_ms = self.tick()
            person.change = self._next_change()
        return list(chosen)

    def delete(self, chosen: Sequence[Person]) -> list[Person]:
        for person in chosen:
            person.deleted_ms = person.modified_ms = self.tick()
            person.change = self._next_change()
        return list(chosen)

    def sample(self, n: int) -> list[Person]:
        live = self.live()
        return sorted(self._rng.sample(live, min(n, len(live))), key=lambda p: p.seq)

    def tick(self) -> int:
        """Now in epoch ms, strictly later than every timestamp handed out before."""
        self._clock_ms = max(self.clock.now_ms(), self._clock_ms + 1)
        return self._clock_ms

    def _next_change(self) -> int:
        self.last_change += 1
        return self.last_change

    def _add(self, created_ms: int, modified_ms: int) -> Person:
        draw, seq = self._rng.random, len(self.all)  # random() is several times cheaper than choice()
        first, last = _FIRST[int(draw() * len(_FIRST))], _LAST[int(draw() * len(_LAST))]
        person = Person(
            seq=seq,
            first=first,
            last=last,
            email=f"{first}.{last}{seq}@example.org".lower(),
            phone=None if draw() < 0.25 else f"+1 555 {int(draw() * 10_000_000):07d}",
            company=_COMPANIES[int(draw() * len(_COMPANIES))],
            title=_TITLES[int(draw() * len(_TITLES))],
            created_ms=created_ms,
            modified_ms=modified_ms,
            change=self._next_change(),
        )
        self.all.append(person)
        self._clock_ms = max(self._clock_ms, modified_ms)
        return person
