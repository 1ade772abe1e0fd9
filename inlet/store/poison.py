"""Poison inbox events: changes that can never be applied (an id the app cannot have, a fetch the app rejects)
are set aside with their reason, so the rest of the connection's inbox is applied. The operator lists them,
retries them (back into the drain) or drops them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, delete, select, update

from inlet.store.tables import InboxEvent, utcnow

__all__ = ["PoisonEvent", "drop_poison", "list_poison", "quarantine_events", "retry_poison"]

_inbox = InboxEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
_SHOWN = 120  # characters of a hostile id shown back to the operator


@dataclass(frozen=True)
class PoisonEvent:
    id: int
    tenant_id: str
    connection_id: str
    external_id: str
    kind: str
    source: str
    reason: str
    quarantined_at: datetime


def quarantine_events(engine: Engine, reasons: Mapping[int, str]) -> None:
    """Set these inbox events aside: inbox id -> why it cannot be applied."""
    with engine.begin() as db:
        for event_id, reason in reasons.items():
            db.execute(
                update(_inbox)
                .where(_inbox.c.id == event_id)
                .values(quarantined_at=utcnow(), quarantine_reason=reason[:1000])
            )


def list_poison(
    engine: Engine,
    tenant_id: str | None = None,
    connection_id: str | None = None,
    *,
    after: int | None = None,
    limit: int | None = None,
) -> list[PoisonEvent]:
    """Poison events by id (of one tenant, one connection, or all), from after `after`, at most `limit`."""
    scope = [_inbox.c.quarantined_at.is_not(None)]
    scope += [_inbox.c.tenant_id == tenant_id] if tenant_id else []
    scope += [_inbox.c.connection_id == connection_id] if connection_id else []
    scope += [_inbox.c.id > after] if after is not None else []
    with engine.connect() as db:
        rows = db.execute(select(_inbox).where(*scope).order_by(_inbox.c.id).limit(limit)).all()
    return [
        PoisonEvent(
            r.id,
            r.tenant_id,
            r.connection_id,
            _shown(r.external_id),
            r.kind,
            r.source,
            r.quarantine_reason or "",
            r.quarantined_at,
        )
        for r in rows
    ]


def retry_poison(engine: Engine, tenant_id: str, ids: list[int] | None = None) -> int:
    """Put a tenant's poison events (these, or all) back into the drain; returns how many."""
    with engine.begin() as db:
        result = db.execute(
            update(_inbox).where(*_chosen(tenant_id, ids)).values(quarantined_at=None, quarantine_reason=None)
        )
        return int(result.rowcount)


def drop_poison(engine: Engine, tenant_id: str, ids: list[int] | None = None) -> int:
    """Delete a tenant's poison events (these, or all); returns how many."""
    with engine.begin() as db:
        return int(db.execute(delete(_inbox).where(*_chosen(tenant_id, ids))).rowcount)


def _chosen(tenant_id: str, ids: list[int] | None) -> list[ColumnElement[bool]]:
    chosen: list[ColumnElement[bool]] = [_inbox.c.tenant_id == tenant_id, _inbox.c.quarantined_at.is_not(None)]
    if ids is not None:
        chosen.append(_inbox.c.id.in_(ids))
    return chosen


def _shown(external_id: str) -> str:
    return external_id if len(external_id) <= _SHOWN else f"{external_id[:_SHOWN]}... ({len(external_id)} chars)"
