"""Delivery figures per destination, the same for `inlet deliveries status`, `inlet status` and the run artifact:
pending (due now), parked (deferred, or behind an open breaker), dead letters, the oldest pending age, the
breaker's state (`refused` when the app answered 401/403) and, while it is not closed, its last error."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, or_, select

from inlet.delivery import breaker
from inlet.delivery.destinations import destination_for
from inlet.delivery.policy import aware
from inlet.settings import Settings
from inlet.store import OutboxEvent, utcnow

__all__ = ["DestinationFigures", "destination_figures"]

_outbox = OutboxEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation


@dataclass
class DestinationFigures:
    destination: str
    pending: int = 0
    parked: int = 0
    dead: int = 0
    oldest_age_seconds: float | None = None
    breaker: str = "closed"
    next_probe: str = "-"
    last_error: str = "-"  # while the breaker is not closed: why it opened (a 401/403 names the fix)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        age = self.oldest_age_seconds
        row["oldest_age_seconds"] = "-" if age is None else round(age, 1)
        return row


def destination_figures(engine: Engine, settings: Settings) -> list[DestinationFigures]:
    """One row per destination that has deliveries waiting, dead, or a breaker that is not closed."""
    now = utcnow()
    waiting = _outbox.c.status == "pending"
    deferred = waiting & _outbox.c.next_attempt_at.is_not(None) & (_outbox.c.next_attempt_at > now)
    due = waiting & or_(_outbox.c.next_attempt_at.is_(None), _outbox.c.next_attempt_at <= now)
    query = select(
        _outbox.c.tenant_id,
        func.sum(case((due, 1), else_=0)),
        func.sum(case((deferred, 1), else_=0)),
        func.sum(case((_outbox.c.status == "dead", 1), else_=0)),
        func.min(case((_outbox.c.status == "pending", _outbox.c.created_at), else_=None)),
    ).group_by(_outbox.c.tenant_id)
    with engine.connect() as db:
        per_tenant = db.execute(query).all()
    states = breaker.read_states(engine)
    figures: dict[str, DestinationFigures] = {}
    for tenant, pending, parked, dead, oldest in per_tenant:
        key = destination_for(engine, settings, tenant).key
        row = figures.setdefault(key, DestinationFigures(key))
        row.pending, row.parked, row.dead = row.pending + int(pending), row.parked + int(parked), row.dead + int(dead)
        if oldest is not None:
            age = (now - aware(_as_datetime(oldest))).total_seconds()
            row.oldest_age_seconds = max(row.oldest_age_seconds or 0.0, age)
    for key, state in states.items():
        row = figures.setdefault(key, DestinationFigures(key))
        row.breaker = state.state
        if state.state != "closed":
            row.parked, row.pending = row.parked + row.pending, 0
            row.next_probe = aware(state.probe_at).isoformat(timespec="seconds") if state.probe_at else "now"
            row.last_error = state.last_error or "-"
            if state.refused_credentials is not None:
                row.breaker = "refused"  # open because the app refused the credentials: only a fix helps
    return [figures[key] for key in sorted(figures)]


def _as_datetime(value: datetime | str) -> datetime:
    # SQLite returns the MIN() of a datetime column as its stored text.
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
