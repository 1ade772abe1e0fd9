"""Who a write to the ledger and the outbox belongs to: tenant, connection, data source, and which enumeration
and run produced it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PageScope"]


@dataclass(frozen=True)
class PageScope:
    """Who a page belongs to and which enumeration read it."""

    tenant_id: str
    connection_id: str
    data_source: str
    generation: str
    run_id: str
