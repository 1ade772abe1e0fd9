"""Quarantined records of a tenant: list them, show one, drop some, or map them again (here or as a Prefect run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Engine

from inlet.errors import NotFound
from inlet.service.installation import Installation
from inlet.service.paging import Page, checked_limit, decode_cursor, page_of
from inlet.service.runs import StartedRun, run_here, start_quarantine_retry
from inlet.service.tenants import require_tenant
from inlet.store import (
    Quarantined,
    drop_quarantined,
    list_connections,
    load_connection,
    quarantine_reasons,
    quarantined,
)

__all__ = [
    "quarantine_failure",
    "drop_one_quarantined",
    "drop_quarantine",
    "list_quarantine",
    "retry_quarantine_here",
    "show_quarantined",
    "start_retry",
]


def quarantine_failure(
    engine: Engine, tenant: str, connection: str, run_id: str, records: int, quarantined_count: int, max_share: float
) -> str | None:
    """Why a run that quarantined more than `max_share` of its `records` must fail, naming the top reasons and the
    fix; None when the share is within bounds (a few bad records are the app's business, most is a mapping's)."""
    if records <= 0 or quarantined_count / records <= max_share:
        return None
    reasons = "; ".join(f"{n} x {error[:300]}" for error, n in quarantine_reasons(engine, connection, run_id))
    return (
        f"{quarantined_count} of {records} records ({quarantined_count / records:.0%}) were quarantined, more than "
        f"INLET_MAX_QUARANTINE_SHARE={max_share:g} allows; top reasons: {reasons or 'unknown'}. Fix the mapping "
        f"(`inlet mappings preview --tenant {tenant} --connection {connection}` shows it on stored records), then "
        f"`inlet quarantine retry --tenant {tenant} --connection {connection}` maps them again"
    )


def list_quarantine(
    inst: Installation, tenant: str, connection: str | None = None, *, cursor: str | None = None, limit: int = 100
) -> Page[Quarantined]:
    """The tenant's quarantined records (of one connection, or all), oldest first."""
    after = cast(int | None, decode_cursor(cursor, int))
    rows = quarantined(
        inst.engine, _connection_ids(inst, tenant, connection), limit=checked_limit(limit) + 1, after=after
    )
    return page_of(rows, limit, lambda q: q.id)


def show_quarantined(inst: Installation, tenant: str, record_id: int) -> Quarantined:
    rows = quarantined(inst.engine, _connection_ids(inst, tenant, None), ids=[record_id])
    if not rows:
        raise NotFound(f"tenant {tenant!r} has no quarantined record {record_id}")
    return rows[0]


def drop_quarantine(inst: Installation, tenant: str, ids: Sequence[int]) -> int:
    """Delete quarantined records of this tenant (others' ids are ignored); how many went."""
    return drop_quarantined(inst.engine, _connection_ids(inst, tenant, None), ids)


def drop_one_quarantined(inst: Installation, tenant: str, record_id: int) -> None:
    """Delete one quarantined record of this tenant; NotFound when it has none with that id."""
    if not drop_quarantine(inst, tenant, [record_id]):
        raise NotFound(f"tenant {tenant!r} has no quarantined record {record_id}")


def retry_quarantine_here(
    inst: Installation, tenant: str, connection: str, ids: Sequence[int] = (), data_source: str = "users"
) -> Any:
    """Map the records again with the current mapping, in this process; the run's summary."""
    load_connection(inst.engine, inst.vault, tenant, connection)
    return run_here(inst, "retry-quarantine", tenant, connection, data_source, list(ids))


def start_retry(inst: Installation, tenant: str, connection: str, ids: Sequence[int] = ()) -> StartedRun:
    """The same as a Prefect flow run of the `retry-quarantine` deployment."""
    return start_quarantine_retry(inst, tenant, connection, ids)


def _connection_ids(inst: Installation, tenant: str, connection: str | None) -> list[str]:
    require_tenant(inst, tenant)
    ids = [c.id for c in list_connections(inst.engine, tenant)]
    if connection is not None:
        if connection not in ids:
            raise NotFound(f"tenant {tenant!r} has no connection {connection!r}")
        return [connection]
    return ids
