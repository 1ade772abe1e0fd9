"""Removing a connection: the row and everything kept for it (tokens, ledger, inbox, outbox, checkpoints,
quarantine, its mapping layer), in one transaction, looked up through its tenant."""

from __future__ import annotations

from sqlalchemy import Engine, delete
from sqlmodel import col

from inlet.errors import NotFound
from inlet.store.tables import (
    Checkpoint,
    Connection,
    InboxEvent,
    LedgerEntry,
    MappingOverride,
    OAuthToken,
    OutboxEvent,
    QuarantinedRecord,
    SyncState,
)

__all__ = ["remove_connection"]

_KEPT_PER_CONNECTION = (OAuthToken, Checkpoint, LedgerEntry, InboxEvent, OutboxEvent, QuarantinedRecord, SyncState)


def remove_connection(engine: Engine, tenant_id: str, connection_id: str) -> None:
    """Delete one tenant's connection and what inlet kept for it; NotFound when the tenant has no such one."""
    with engine.begin() as db:
        for table in _KEPT_PER_CONNECTION:
            db.execute(delete(table).where(col(table.connection_id) == connection_id))
        db.execute(
            delete(MappingOverride).where(
                col(MappingOverride.tenant_id) == tenant_id, col(MappingOverride.connection_id) == connection_id
            )
        )
        removed = db.execute(
            delete(Connection).where(col(Connection.id) == connection_id, col(Connection.tenant_id) == tenant_id)
        ).rowcount
        if not removed:
            raise NotFound(f"tenant {tenant_id!r} has no connection {connection_id!r}")
