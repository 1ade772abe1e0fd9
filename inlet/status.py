"""Figures per connection for `inlet status`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from inlet import outbox
from inlet.store import Checkpoint, Connection, LedgerEntry, OAuthToken, QuarantinedRecord

__all__ = ["connection_status"]


def connection_status(engine: Engine) -> list[dict[str, Any]]:
    rows = []
    with Session(engine) as session:
        for c in session.exec(select(Connection).order_by(col(Connection.tenant_id), col(Connection.id))):
            checkpoint = session.get(Checkpoint, (c.id, c.data_source))
            live = session.exec(
                select(func.count()).where(
                    LedgerEntry.connection_id == c.id,
                    col(LedgerEntry.deleted_at).is_(None),
                )
            ).one()
            quarantined = session.exec(select(func.count()).where(QuarantinedRecord.connection_id == c.id)).one()
            box = outbox.counts(engine, c.id)
            token = session.get(OAuthToken, c.id)
            rows.append(
                {
                    "tenant": c.tenant_id,
                    "connection": c.id,
                    "app": c.app,
                    "last_full_import": checkpoint.updated_at.isoformat(timespec="seconds") if checkpoint else "never",
                    "import_state": ("complete" if checkpoint.complete else f"at page {checkpoint.pages}")
                    if checkpoint
                    else "-",
                    "records": live,
                    "outbox_pending": box.pending,
                    "dead_letters": box.dead,
                    "quarantined": quarantined,
                    "auth": f"oauth:{token.status}" if token else "credentials",  # oauth:needs_reauth: reconnect
                }
            )
    return rows
