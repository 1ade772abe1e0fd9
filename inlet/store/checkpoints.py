"""Checkpoints: where the full import of one connection's data source stands, so a crashed or cancelled run
resumes from its last committed page. A checkpoint names its enumeration (`generation`); the ledger marks
each record it sees with it, and the sweep deletes what the finished enumeration never saw."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection as DBConnection
from sqlalchemy import Engine, bindparam, select, update
from sqlmodel import Session

from inlet.store.tables import Checkpoint, utcnow

__all__ = ["advance", "current_generation", "start_or_resume"]

_checkpoint = Checkpoint.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation


def start_or_resume(engine: Engine, connection_id: str, data_source: str, *, restart: bool = False) -> Checkpoint:
    """The unfinished enumeration of this connection's data source, or a new one (always new with `restart`)."""
    with Session(engine) as session:
        checkpoint = session.get(Checkpoint, (connection_id, data_source))
        if checkpoint is None or checkpoint.complete or restart:
            checkpoint = checkpoint or Checkpoint(connection_id=connection_id, data_source=data_source, generation="")
            checkpoint.generation = uuid.uuid4().hex
            checkpoint.next_request = None
            checkpoint.pages = checkpoint.records = 0
            checkpoint.complete = False
            checkpoint.started_at = checkpoint.updated_at = utcnow()
            session.add(checkpoint)
            session.commit()
            session.refresh(checkpoint)
        session.expunge(checkpoint)
        return checkpoint


def current_generation(engine: Engine, connection_id: str, data_source: str) -> str | None:
    """The enumeration of the latest full import (finished or not); None before the first one."""
    with engine.connect() as db:
        generation: str | None = db.execute(
            select(_checkpoint.c.generation).where(
                _checkpoint.c.connection_id == connection_id, _checkpoint.c.data_source == data_source
            )
        ).scalar_one_or_none()
    return generation


def advance(
    db: DBConnection, connection_id: str, data_source: str, next_request: str | None, records: int, pages: int = 1
) -> None:
    """Count committed pages (inside their transaction); no next request: the enumeration is complete."""
    values = {
        "next_request": next_request,
        "records": records,
        "pages": pages,
        "complete": next_request is None,
        "now": utcnow(),
    }
    db.execute(_ADVANCE, {"c": connection_id, "d": data_source, **values})


_ADVANCE = (  # built once: a page's write runs it
    update(_checkpoint)
    .where(_checkpoint.c.connection_id == bindparam("c"), _checkpoint.c.data_source == bindparam("d"))
    .values(
        next_request=bindparam("next_request"),
        pages=_checkpoint.c.pages + bindparam("pages"),
        records=_checkpoint.c.records + bindparam("records"),
        complete=bindparam("complete"),
        updated_at=bindparam("now", type_=_checkpoint.c.updated_at.type),
    )
)
