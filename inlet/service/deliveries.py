"""Deliveries to the team's app: figures per destination, the events waiting and the dead letters, replay, purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal, cast

from inlet.delivery import DestinationFigures, destination_figures
from inlet.errors import ConfigError
from inlet.service.installation import Installation
from inlet.service.paging import Page, checked_limit, decode_cursor, page_of
from inlet.store import OutboxEntry, entries, purge, replay, utcnow

__all__ = [
    "OutboxEntry",
    "delivery_status",
    "list_deliveries",
    "purge_dead_letters",
    "replay_dead_letters",
    "replay_selected",
]


def delivery_status(inst: Installation) -> list[DestinationFigures]:
    """One row per destination with deliveries waiting or dead, or a breaker that is not closed."""
    return destination_figures(inst.engine, inst.settings)


def list_deliveries(
    inst: Installation,
    status: Literal["pending", "dead"],
    tenant: str | None = None,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[OutboxEntry]:
    """Events waiting for the app (or dead letters), oldest first, with the app's last answer."""
    after = cast(int | None, decode_cursor(cursor, int))
    rows = entries(inst.engine, status, tenant, checked_limit(limit) + 1, after=after)
    return page_of(rows, limit, lambda e: e.id)


def replay_dead_letters(inst: Installation, *, ids: Sequence[int] | None = None, tenant: str | None = None) -> int:
    """Make dead letters pending again (all of them when neither ids nor tenant is given); how many."""
    return replay(inst.engine, ids=list(ids) if ids is not None else None, tenant_id=tenant)


def replay_selected(
    inst: Installation, *, ids: Sequence[int] | None = None, tenant: str | None = None, every: bool = False
) -> int:
    """`replay_dead_letters`, refusing a call that names no dead letters (all of them must be asked for)."""
    if not (ids or tenant or every):
        raise ConfigError("say which dead letters: ids, a tenant, or all")
    return replay_dead_letters(inst, ids=ids or None, tenant=tenant)


def purge_dead_letters(inst: Installation, older_than: timedelta) -> int:
    return purge(inst.engine, utcnow() - older_than)
