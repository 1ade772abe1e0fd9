"""The circuit breaker of one destination, kept in the store so that every process delivering to it agrees.

    closed --`threshold` consecutive failed attempts--> open --`probe_at` passes--> half_open (one probe)
      ^                                                  ^                              |
      +------------------ a 2xx -------------------------+------- the probe fails ------+

While it is open, deliveries to the destination are parked (they keep their place in the outbox) instead
of burning attempts. The cool-down before a probe doubles with each trip up to the retry cap, so an app
that is down for a day costs one probe an hour, not an attempt per batch. Exactly one drain wins the probe:
the switch to half_open is a conditional UPDATE. Written by hand: the breaker libraries (pybreaker,
aiobreaker, purgatory) keep their state in one process's memory (or Redis), not in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, or_, update
from sqlmodel import Session, select

from inlet.store import DestinationState, utcnow

__all__ = [
    "BreakerPolicy",
    "Gate",
    "gate",
    "is_clean",
    "read_states",
    "record_failure",
    "record_refusal",
    "record_success",
]

Gate = Literal["closed", "probe", "open"]
_table = DestinationState.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation


@dataclass(frozen=True)
class BreakerPolicy:
    threshold: int = 5
    cooldown_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def cooldown(self, trips: int) -> timedelta:
        """The wait before the probe after the `trips`-th consecutive opening (1-based)."""
        return timedelta(seconds=min(self.cap_seconds, self.cooldown_seconds * 2 ** max(0, trips - 1)))


def gate(
    engine: Engine, key: str, policy: BreakerPolicy, now: datetime | None = None, fingerprint: str | None = None
) -> tuple[Gate, datetime | None]:
    """May a drain send now: freely (closed), one probe request (probe), or not before the returned time (open).

    A breaker opened by a refusal (401/403) lets a probe through at once when the credentials changed
    (`fingerprint` differs from the refused one): the operator fixed the secret and need not wait."""
    now = now or utcnow()
    with Session(engine) as session:
        row = session.get(DestinationState, key)
        if row is None or row.state == "closed":
            return "closed", None
        probe_at, trips, refused = _aware(row.probe_at), row.trips, row.refused_credentials
    changed = refused is not None and fingerprint is not None and fingerprint != refused
    if probe_at is not None and probe_at > now and not changed:
        return "open", probe_at
    # Claim the probe: only the drain whose UPDATE matches the old probe time gets it; a lost probe
    # (its process died) is claimable again once its own cool-down has passed.
    claimed_until = now + policy.cooldown(trips)
    due = or_(_table.c.probe_at.is_(None), _table.c.probe_at <= now)
    if changed:
        due = or_(due, _table.c.refused_credentials == refused)
    with engine.begin() as db:
        claimed = db.execute(
            update(_table)
            .where(_table.c.key == key, _table.c.state != "closed", due)
            .values(state="half_open", probe_at=claimed_until, refused_credentials=None, updated_at=now)
        ).rowcount
    return ("probe", None) if claimed == 1 else ("open", claimed_until)


def is_clean(engine: Engine, key: str) -> bool:
    """Closed with no failure counted: a success has nothing to reset (and need not write)."""
    with Session(engine) as session:
        row = session.get(DestinationState, key)
    return row is None or (row.state == "closed" and row.failures == 0)


def record_success(engine: Engine, key: str) -> None:
    """A 2xx (or an app's 4xx answer): the destination works; close the breaker if it was not."""
    with engine.begin() as db:
        db.execute(
            update(_table)
            .where(_table.c.key == key, or_(_table.c.state != "closed", _table.c.failures != 0))
            .values(state="closed", failures=0, trips=0, probe_at=None, refused_credentials=None, updated_at=utcnow())
        )


def record_failure(
    engine: Engine, key: str, policy: BreakerPolicy, error: str, now: datetime | None = None
) -> datetime | None:
    """Count a failed attempt; returns the probe time if the breaker is (now) open."""
    now = now or utcnow()
    with Session(engine) as session:
        row = session.get(DestinationState, key, with_for_update=True) or DestinationState(key=key)
        row.failures += 1
        row.last_error = error[:4000]
        row.updated_at = now
        if row.state == "half_open" or (row.state == "closed" and row.failures >= policy.threshold):
            row.state, row.trips = "open", row.trips + 1
            row.probe_at = now + policy.cooldown(row.trips)
        probe_at = _aware(row.probe_at) if row.state == "open" else None
        session.add(row)
        session.commit()
    return probe_at


def record_refusal(
    engine: Engine, key: str, policy: BreakerPolicy, error: str, fingerprint: str, now: datetime | None = None
) -> datetime:
    """The app refused the credentials (401/403): open at once, remembering which credentials it refused.
    Returns the probe time; a change of credentials is tried before it (see `gate`)."""
    now = now or utcnow()
    with Session(engine) as session:
        row = session.get(DestinationState, key, with_for_update=True) or DestinationState(key=key)
        row.failures += 1
        row.trips = row.trips + 1 if row.state != "open" else row.trips
        row.state, row.last_error, row.updated_at = "open", error[:4000], now
        row.refused_credentials = fingerprint
        row.probe_at = probe_at = now + policy.cooldown(max(row.trips, 1))
        session.add(row)
        session.commit()
    return probe_at


def read_states(engine: Engine) -> dict[str, DestinationState]:
    """Every destination's breaker, by key."""
    with Session(engine) as session:
        rows = list(session.exec(select(DestinationState)))
        for row in rows:
            session.expunge(row)
    return {row.key: row for row in rows}


def _aware(when: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; the store writes UTC only."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)
