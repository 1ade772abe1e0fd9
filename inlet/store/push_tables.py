"""The tables of bi-directional sync: the push outbox, data links between app and external ids, the writes
inlet made (to recognise their echoes) and each connection's push counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from inlet.store.tables import utcnow

__all__ = ["DataLink", "PushEcho", "PushEvent", "PushStat"]


class PushEvent(SQLModel, table=True):
    """One change the team's app pushed for one connection; it leaves only once written (or as a dead letter)."""

    __tablename__ = "push_outbox"
    __table_args__ = (
        Index("ix_push_outbox_drain", "connection_id", "status", "id"),
        Index("ux_push_outbox_key", "connection_id", "idempotency_key", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    connection_id: str
    data_source: str
    app_id: str = Field(description="the record's id in the team's app")
    external_id: str | None = Field(default=None, description="the external id the app named, if any")
    type: str = Field(description="created, updated or deleted")
    record: str | None = Field(default=None, sa_column=Column(Text))
    occurred_at: str | None = Field(default=None, description="when the app changed it (ISO 8601)")
    idempotency_key: str = Field(description="hash of connection, data source, app id and the app's change id")
    status: str = Field("pending", description="pending or dead")
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    dead_at: datetime | None = None


class DataLink(SQLModel, table=True):
    """App id <-> external id of one record in one connection, with what the last sync of it left."""

    __tablename__ = "data_link"
    __table_args__ = (Index("ux_data_link_external", "connection_id", "data_source", "external_id", unique=True),)

    connection_id: str = Field(primary_key=True)
    data_source: str = Field(primary_key=True)
    app_id: str = Field(primary_key=True)
    external_id: str | None = Field(default=None, description="None while a create's outcome is unknown")
    origin: str = Field(description="push (created by inlet), found (find-or-create) or named (the app named it)")
    create_key: str | None = Field(default=None, description="idempotency key of a create in flight")
    etag: str | None = None
    external_modified_at: str | None = Field(default=None, description="the app's modified time at the last sync")
    synced_at: datetime | None = None
    deleted_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PushEcho(SQLModel, table=True):
    """One write inlet made: the hashes of the fields it wrote, to recognise the change when it comes back."""

    __tablename__ = "push_echo"
    __table_args__ = (Index("ix_push_echo_record", "connection_id", "data_source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: str
    data_source: str
    external_id: str
    kind: str = Field(description="created, updated or deleted")
    field_hashes: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    etag: str | None = None
    modified_at: str | None = None
    written_at: datetime = Field(default_factory=utcnow, index=True)


class PushStat(SQLModel, table=True):
    """Running totals of one connection's pushes, for `inlet status`."""

    __tablename__ = "push_stat"

    connection_id: str = Field(primary_key=True)
    data_source: str = Field(primary_key=True)
    written: int = 0
    failed: int = 0
    conflicts: int = 0
    echo_suppressed: int = 0
    dropped_fields: int = 0
    last_push_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
