"""Poison inbox events the CLI and the API share: changes set aside with their reason (an id the app cannot have, a
fetch it rejects for good), listed, put back into the drain or dropped, one tenant's at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from inlet.errors import NotFound
from inlet.service.installation import Installation
from inlet.service.paging import Page, checked_limit, decode_cursor, page_of
from inlet.service.tenants import require_tenant
from inlet.store import PoisonEvent, list_connections, list_poison
from inlet.store import drop_poison as drop_poison_events
from inlet.store import retry_poison as retry_poison_events

__all__ = ["drop_one_poison", "drop_poison", "poison_events", "poison_page", "retry_poison"]


def poison_events(
    inst: Installation, tenant_id: str | None = None, connection_id: str | None = None
) -> list[PoisonEvent]:
    """The inbox events set aside, with their reason (one tenant's, or every tenant's for the operator)."""
    if tenant_id is not None:
        _require(inst, tenant_id, connection_id)
    return list_poison(inst.engine, tenant_id, connection_id)


def poison_page(
    inst: Installation, tenant_id: str, connection_id: str | None = None, *, cursor: str | None = None, limit: int = 100
) -> Page[PoisonEvent]:
    """One page of a tenant's poison events (of one connection, or all), oldest first."""
    after = cast(int | None, decode_cursor(cursor, int))
    _require(inst, tenant_id, connection_id)
    rows = list_poison(inst.engine, tenant_id, connection_id, after=after, limit=checked_limit(limit) + 1)
    return page_of(rows, limit, lambda event: event.id)


def retry_poison(inst: Installation, tenant_id: str, ids: Sequence[int] | None = None) -> int:
    """Put a tenant's poison events (these, or all) back into the drain; how many. Others' ids are ignored."""
    _require(inst, tenant_id, None)
    return retry_poison_events(inst.engine, tenant_id, None if ids is None else list(ids))


def drop_poison(inst: Installation, tenant_id: str, ids: Sequence[int] | None = None) -> int:
    """Delete a tenant's poison events (these, or all); how many. Others' ids are ignored."""
    _require(inst, tenant_id, None)
    return drop_poison_events(inst.engine, tenant_id, None if ids is None else list(ids))


def drop_one_poison(inst: Installation, tenant_id: str, event_id: int) -> None:
    """Delete one poison event of this tenant; NotFound when it has none with that id."""
    if not drop_poison(inst, tenant_id, [event_id]):
        raise NotFound(f"tenant {tenant_id!r} has no poison inbox event {event_id}")


def _require(inst: Installation, tenant_id: str, connection_id: str | None) -> None:
    """NotFound unless the tenant exists (and has the connection, when one is named)."""
    require_tenant(inst, tenant_id)
    if connection_id is not None and connection_id not in {c.id for c in list_connections(inst.engine, tenant_id)}:
        raise NotFound(f"tenant {tenant_id!r} has no connection {connection_id!r}")
