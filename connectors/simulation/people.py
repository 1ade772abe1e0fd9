"""Seeded people and their change log: what every simulator renders in its own app's shape.

The same seed gives the same people. Each mutation stamps the person with the simulated clock and the
next position in the change log, and field updates are kept as `FieldChange`s, so simulators can serve
"what changed since", property histories and per-record changelogs from one sequence. A person is live,
soft-deleted (`deleted`, restorable), or purged (`purged`: gone for good, `deleted` too).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connectors.simulation.clock import SimClock

__all__ = ["EDITABLE", "EPOCH_MS", "FieldChange", "People", "Person"]

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: seeded people are created 10 s apart from here
EDITABLE = ("first", "last", "email", "phone", "company", "title")  # fields a test may set
_FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Katherine")
_LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Ng")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")
_TITLES = ("Engineer", "Analyst", "Manager", "Director", "Designer", "Consultant", "Founder", "Researcher")
View = TypeVar("View")


@dataclass(frozen=True)
class FieldChange:
    """One field of one person changed by one mutation (its change-log position `change`)."""

    change: int
    at_ms: int
    field: str
    old: str | None
    new: str | None
    by: str | None = None  # the API client that made it (None: a person in the app)


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
    deleted_ms: int | None = None  # soft-deleted (or purged) at
    change: int = 0  # position in the change log of the last mutation
    created_change: int = 0  # position in the change log of the creation
    restored_change: int = 0  # position in the change log of the last restore
    purged_ms: int | None = None  # deleted for good at: no restore, no trace in deleted listings
    history: list[FieldChange] = field(default_factory=list)  # field updates, oldest first
    merged_into: int | None = None  # seq of the person this one was merged into
    merged_from: list[int] = field(default_factory=list)  # seqs merged into this one
    modified_by: str | None = None  # who made the last change: None a person in the app, else an API client

    @property
    def deleted(self) -> bool:
        return self.deleted_ms is not None

    @property
    def purged(self) -> bool:
        return self.purged_ms is not None

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"

    def value_at(self, name: str, change: int) -> Any:
        """The value field `name` had just after change-log position `change`."""
        later = [c for c in self.history if c.field == name and c.change > change]
        return later[0].old if later else getattr(self, name)


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

    def create(self, n: int, fields: Sequence[Mapping[str, Any]] = (), *, by: str | None = None) -> list[Person]:
        """`n` new people created now, or one per entry of `fields` with those fields set; `by`: the API
        client that made them (None: a person in the app)."""
        specs = list(fields) or [{}] * n
        for spec in specs:
            _check(spec)
        created = [self._add(now, now) for now in (self.tick() for _ in specs)]
        for person, spec in zip(created, specs, strict=True):
            person.modified_by = by
            for name, value in spec.items():
                setattr(person, name, value)
        return created

    def update(
        self, chosen: Sequence[Person], fields: Mapping[str, Any] | None = None, *, by: str | None = None
    ) -> list[Person]:
        """Change `fields` of each person (by default: a new random job title; `{}`: none) and stamp the change."""
        _check(fields or {})
        for person in chosen:
            person.modified_by = by
            values = (
                fields if fields is not None else {"title": self._rng.choice([t for t in _TITLES if t != person.title])}
            )
            person.modified_ms, person.change = self.tick(), self._next_change()
            for name, value in values.items():
                old = getattr(person, name)
                if old != value:
                    person.history.append(FieldChange(person.change, person.modified_ms, name, old, value, by))
                setattr(person, name, value)
        return list(chosen)

    def delete(self, chosen: Sequence[Person], *, by: str | None = None) -> list[Person]:
        """Soft-delete: recoverable with `restore`."""
        for person in chosen:
            person.modified_by = by
            person.deleted_ms = person.modified_ms = self.tick()
            person.change = self._next_change()
        return list(chosen)

    def purge(self, chosen: Sequence[Person], *, by: str | None = None) -> list[Person]:
        """Delete for good, live or soft-deleted people alike."""
        for person in chosen:
            person.modified_by = by
            person.purged_ms = person.modified_ms = self.tick()
            person.deleted_ms = person.deleted_ms or person.purged_ms
            person.change = self._next_change()
        return list(chosen)

    def restore(self, chosen: Sequence[Person]) -> list[Person]:
        """Bring soft-deleted (not purged) people back."""
        back = [p for p in chosen if p.deleted and not p.purged]
        for person in back:
            person.deleted_ms, person.modified_ms = None, self.tick()
            person.change = person.restored_change = self._next_change()
        return back

    def merge(self, primary: Person, merged: Sequence[Person]) -> Person:
        """Merge `merged` into `primary`: they are purged, `primary` records them and changes."""
        for person in merged:
            person.merged_into = primary.seq
        primary.merged_from += [p.seq for p in merged]
        self.purge(merged)
        primary.modified_ms, primary.change = self.tick(), self._next_change()
        return primary

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
        person.created_change = person.change
        self.all.append(person)
        self._clock_ms = max(self._clock_ms, modified_ms)
        return person


def _check(fields: Mapping[str, Any]) -> None:
    """ValueError unless every key is an editable field and every value a string (or null for the phone)."""
    for name, value in fields.items():
        if name not in EDITABLE:
            raise ValueError(f"unknown field {name!r}; editable: {', '.join(EDITABLE)}")
        if not (isinstance(value, str) or (value is None and name == "phone")):
            raise ValueError(f"{name} must be a string, got {value!r}")
