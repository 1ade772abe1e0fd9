"""The store's tables (SQLModel). Hot paths (a page of ledger and outbox rows) use SQLAlchemy Core on these
tables; the ORM serves the CLI's small reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, Float, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

if TYPE_CHECKING:
    pass

__all__ = [
    "AppSchemaCache",
    "Checkpoint",
    "MappingOverride",
    "Connection",
    "DestinationOverride",
    "DestinationState",
    "LedgerEntry",
    "OutboxEvent",
    "InboxEvent",
    "OAuthClientRow",
    "OAuthState",
    "OAuthToken",
    "QuarantinedRecord",
    "SyncPolicy",
    "SyncState",
    "WebhookReceipt",
    "WebhookSubscription",
    "Tenant",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Tenant(SQLModel, table=True):
    """One customer of the team's app."""

    # sqlmodel drops `regex=` under pydantic 2; the pattern has to travel as schema_extra to be enforced.
    id: str = Field(primary_key=True, schema_extra={"pattern": r"^[a-z0-9][a-z0-9_-]*$"})
    name: str
    created_at: datetime = Field(default_factory=utcnow)


class Connection(SQLModel, table=True):
    """A tenant's account in one external app; credentials are stored encrypted (see inlet.vault)."""

    id: str = Field(primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    app: str
    data_source: str = "users"
    collection: str | None = Field(default=None, description="override of the collection that provides the data source")
    parameters: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    credentials_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary), repr=False)
    created_at: datetime = Field(default_factory=utcnow)


class Checkpoint(SQLModel, table=True):
    """Where a full import of one connection stands; written in the same transaction as its page."""

    connection_id: str = Field(primary_key=True)
    data_source: str = Field(primary_key=True)
    generation: str = Field(description="one full enumeration, kept across resumed runs")
    next_request: str | None = Field(default=None, sa_column=Column(Text))
    pages: int = 0
    records: int = 0
    complete: bool = False
    started_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LedgerEntry(SQLModel, table=True):
    """What inlet last sent the app for one external record."""

    __tablename__ = "ledger"
    __table_args__ = {"sqlite_with_rowid": False}  # one B-tree per insert instead of two

    connection_id: str = Field(primary_key=True)
    data_source: str = Field(primary_key=True)
    external_id: str = Field(primary_key=True)
    payload_hash: str
    version: int = Field(description="per-record change sequence; part of the idempotency key")
    source_updated_at: str | None = None
    first_seen_run: str
    last_seen_run: str = Field(description="generation of the last enumeration that saw it")
    deleted_at: datetime | None = None
    raw: str | None = Field(
        default=None, sa_column=Column(Text), description="the source record as JSON, for remap (INLET_KEEP_RAW)"
    )


class OutboxEvent(SQLModel, table=True):
    """One change waiting for the team's app; it leaves only after a 2xx (or becomes a dead letter)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_drain", "connection_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(description="evt_ + the idempotency key's head: unique by construction")
    tenant_id: str
    connection_id: str
    data_source: str
    external_id: str
    type: str
    record: str | None = Field(default=None, sa_column=Column(Text))
    source_updated_at: str | None = None
    idempotency_key: str
    version: int
    status: str = Field("pending", description="pending or dead")
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    dead_at: datetime | None = Field(default=None, description="when it became a dead letter")
    claimed_by: str | None = Field(default=None, description="the drain sending it now (host:pid:token)")
    claimed_until: datetime | None = Field(default=None, description="when that drain's claim lapses")


class DestinationOverride(SQLModel, table=True):
    """One tenant's own destination; unset fields fall back to the installation's default in settings."""

    __tablename__ = "destination"

    tenant_id: str = Field(primary_key=True, foreign_key="tenant.id")
    url: str | None = None
    path: str | None = None
    oauth_token_url: str | None = None
    oauth_client_id: str | None = None
    oauth_scope: str | None = None
    # Vault-encrypted: secret, previous_secret (during a rotation), bearer_token, oauth_client_secret.
    secrets_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary), repr=False)
    updated_at: datetime = Field(default_factory=utcnow)


class DestinationState(SQLModel, table=True):
    """The circuit breaker of one destination (url + path), shared by every process that delivers to it."""

    __tablename__ = "destination_state"

    key: str = Field(primary_key=True, description="url + path of the destination")
    state: str = Field(default="closed", description="closed, open or half_open")
    failures: int = Field(default=0, description="consecutive failed attempts")
    trips: int = Field(default=0, description="consecutive openings; the cool-down doubles with each")
    probe_at: datetime | None = Field(default=None, description="when an open breaker lets one probe through")
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    refused_credentials: str | None = Field(
        default=None, description="fingerprint of the credentials the app refused (401/403); none: not refused"
    )
    updated_at: datetime = Field(default_factory=utcnow)


class QuarantinedRecord(SQLModel, table=True):
    """A record that could not be mapped; kept with its raw payload so nothing is lost."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True)
    connection_id: str = Field(index=True)
    data_source: str
    external_id: str
    raw: str = Field(sa_column=Column(Text, nullable=False))
    error: str
    run_id: str
    created_at: datetime = Field(default_factory=utcnow)


class MappingOverride(SQLModel, table=True):
    """A tenant's layer of field mappings (connection_id ""), or one connection's; edited with `inlet mappings`."""

    __tablename__ = "mapping_override"

    tenant_id: str = Field(primary_key=True)
    connection_id: str = Field(primary_key=True, description='"" for the layer of every connection of the tenant')
    data_source: str = Field(primary_key=True)
    fields: dict[str, str | None] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False), description="target -> expression; null removes"
    )
    lookups: dict[str, dict[str, Any]] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class AppSchemaCache(SQLModel, table=True):
    """The JSON Schema the team's app gave for one tenant's data source, and when it was fetched."""

    __tablename__ = "app_schema"

    tenant_id: str = Field(primary_key=True)
    data_source: str = Field(primary_key=True)
    document: str = Field(sa_column=Column(Text, nullable=False))
    source: str = Field(description="the URL it was fetched from")
    fetched_at: datetime = Field(default_factory=utcnow)


class InboxEvent(SQLModel, table=True):
    """A change heard from a webhook or a poll, kept until the incremental import has put it in the outbox."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_drain", "connection_id", "id"),
        Index("ux_inbox_source_event", "connection_id", "source_event_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    connection_id: str
    data_source: str
    external_id: str
    kind: str = Field(description="upsert or deleted")
    record: str | None = Field(default=None, sa_column=Column(Text), description="the record, when the source sent it")
    source: str = Field(description="webhook, poll or resync")
    source_event_id: str | None = Field(default=None, description="the app's event id, to drop its retries")
    occurred_at: str | None = None
    received_at: datetime = Field(default_factory=utcnow)
    quarantined_at: datetime | None = Field(default=None, description="set: a poison event, kept out of the drain")
    quarantine_reason: str | None = Field(default=None, sa_column=Column(Text))


class SyncState(SQLModel, table=True):
    """Where the polling of one connection stands: the app's token for the next pull."""

    __tablename__ = "sync_state"

    connection_id: str = Field(primary_key=True)
    data_source: str = Field(primary_key=True)
    since: str | None = Field(default=None, sa_column=Column(Text))
    last_poll_at: datetime | None = None
    last_resync_at: datetime | None = None


class SyncPolicy(SQLModel, table=True):
    """How and when one connection is kept up to date, and where that stands. The scheduler derives what is due
    from these timestamps alone, so a lost scheduler run loses nothing."""

    __tablename__ = "sync_policy"

    connection_id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    data_source: str = "users"
    poll_seconds: int = 300
    reconcile_seconds: int = 86_400
    webhooks: bool = False
    state: str = Field(default="active", description="active, paused or needs_reauth")
    state_reason: str | None = Field(default=None, sa_column=Column(Text))
    imported_at: datetime | None = Field(default=None, description="the first full import completed")
    pending_since: str | None = Field(default=None, sa_column=Column(Text), description="position before the import")
    import_submitted_at: datetime | None = None
    poll_submitted_at: datetime | None = None
    reconcile_submitted_at: datetime | None = None
    last_poll_at: datetime | None = None
    last_poll_mode: str | None = None
    last_poll_error: str | None = Field(default=None, sa_column=Column(Text), description="why the last poll failed")
    last_poll_error_at: datetime | None = None
    last_change_at: datetime | None = Field(default=None, description="newest change a poll found, as the app said")
    last_reconcile_at: datetime | None = None
    drift: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))
    requested_work: str | None = Field(default=None, description="import or reconcile, asked for out of turn")
    requested_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookReceipt(SQLModel, table=True):
    """The signature of every accepted webhook, so a replayed request is refused."""

    __tablename__ = "webhook_receipt"

    digest: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, index=True)


class WebhookSubscription(SQLModel, table=True):
    """A connection's webhook subscription at its app: the app's id for it, its expiry, the secret its webhooks
    prove (vault-encrypted), and a lifecycle event the receiver heard that the scheduler has yet to act on."""

    __tablename__ = "webhook_subscription"

    connection_id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    app: str
    remote_id: str | None = Field(default=None, description="the app's id; none: not (yet) created")
    expires_at: datetime | None = Field(default=None, description="none: it lives until deleted")
    secret_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary), repr=False)
    state: str = Field(default="active", description="active, unavailable (no public receiver URL) or failed")
    reason: str | None = Field(default=None, sa_column=Column(Text))
    lifecycle: str | None = Field(default=None, description="missed, reauthorizationRequired or subscriptionRemoved")
    created_at: datetime = Field(default_factory=utcnow)
    renewed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class OAuthClientRow(SQLModel, table=True):
    """The team's OAuth app registered at one external app; the secret is encrypted (inlet.vault)."""

    __tablename__ = "oauth_client"

    app: str = Field(primary_key=True)
    client_id: str
    client_secret_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False), repr=False)
    created_at: datetime = Field(default_factory=utcnow)


class OAuthState(SQLModel, table=True):
    """One issued `state` of the connect flow; `used_at` makes it single-use (its expiry is signed in it)."""

    __tablename__ = "oauth_state"

    nonce: str = Field(primary_key=True)
    tenant_id: str
    connection_id: str
    app: str
    verifier_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary), repr=False)  # PKCE
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None


class OAuthToken(SQLModel, table=True):
    """A connection's OAuth tokens (encrypted), with a version for compare-and-swap and a refresh lease."""

    __tablename__ = "oauth_token"

    connection_id: str = Field(primary_key=True, foreign_key="connection.id")
    grant: str
    tokens_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False), repr=False)
    version: int = 1
    expires_at: float | None = Field(default=None, sa_column=Column(Float), description="epoch seconds")
    status: str = Field(default="active", description="active or needs_reauth")
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    lease_owner: str | None = None
    lease_until: float | None = Field(default=None, sa_column=Column(Float), description="epoch seconds")
    refreshes: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
