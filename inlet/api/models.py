"""What the API takes and gives, as pydantic models (they make the OpenAPI document). Secrets go in (write-only
credential fields, typed SecretStr) and never come out: a connection shows credential names only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = [
    "MAX_ROW_ID",
    "ApiKeyCreated",
    "ApiKeyIn",
    "ApiKeyOut",
    "AuditOut",
    "ConnectSessionIn",
    "ConnectSessionOut",
    "ConnectionIn",
    "ConnectionOut",
    "ConnectorOut",
    "DeliveryOut",
    "DestinationOut",
    "ImportIn",
    "MappingChangeIn",
    "MappingOut",
    "Paged",
    "PoisonChoiceIn",
    "PoisonCount",
    "PoisonOut",
    "PreviewIn",
    "PreviewOut",
    "QuarantinedOut",
    "ReplayIn",
    "Replayed",
    "ResetOut",
    "RetryIn",
    "RunOut",
    "StatusOut",
    "SyncIn",
    "SyncOut",
    "TenantIn",
    "TenantOut",
    "ValidationOut",
]

T = TypeVar("T")
MAX_ROW_ID = 2**63 - 1  # a store id is a signed 64-bit integer: a larger one is refused, never sent to the database
Identifier = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", min_length=1, max_length=100)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Paged(_Out, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` for the next page (null: the last page)."""

    items: list[T]
    next_cursor: str | None


class ConnectorOut(_Out):
    name: str
    title: str
    supports: list[str]
    oauth_grants: list[str]
    auth_schema: dict[str, Any] = Field(description="JSON Schema of the parameters and credentials that connect one")
    writable_fields: dict[str, str | None] = Field(
        {}, description="per UDM field, the app's field a push writes it to (null: the app cannot write it)"
    )


class TenantIn(BaseModel):
    id: str = Identifier
    name: str | None = Field(None, max_length=200)


class TenantOut(_Out):
    id: str
    name: str
    created_at: datetime


class ConnectionIn(BaseModel):
    app: str = Field(min_length=1, max_length=100, description="connector name, e.g. hubspot")
    id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100, description="default <tenant>-<app>")
    parameters: dict[str, str] = Field(default_factory=dict, description="as the connector's auth_schema says")
    credentials: dict[str, SecretStr] = Field(
        default_factory=dict, description="write-only; stored encrypted, never shown again"
    )
    replace: bool = False
    check: bool = Field(True, description="read the app's first page with the credentials before saving")


class ConnectionOut(_Out):
    id: str
    tenant: str
    app: str
    data_source: str
    parameters: dict[str, str]
    credential_names: list[str]
    auth: str = Field(description="credentials, oauth:active or oauth:needs_reauth (reconnect)")
    auth_reason: str | None
    created_at: datetime


class ConnectSessionIn(BaseModel):
    connectors: list[str] = Field(min_length=1, max_length=50, description="the connectors the tenant may connect")
    parameters: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="per connector, parameters set for the tenant (not asked on the page)"
    )
    ttl_seconds: float | None = Field(None, gt=0, description="default and longest: INLET_API__SESSION_TTL_SECONDS")


class ConnectSessionOut(BaseModel):
    id: str
    tenant: str
    connectors: list[str]
    expires_at: datetime
    token: str = Field(description="shown once: the tenant's browser uses it (pages, or Bearer on the API)")
    url: str = Field(description="the connect page; open it in an iframe or a popup")


class ImportIn(BaseModel):
    restart: bool = False
    force_delete: bool = False


class RunOut(_Out):
    flow_run_id: str
    name: str
    deployment: str
    state: str


class SyncIn(BaseModel):
    """What to change in a connection's sync policy; what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    poll_seconds: int | None = Field(None, ge=10, le=86_400 * 7, description="seconds between polls")
    reconcile_seconds: int | None = Field(
        None, ge=60, le=86_400 * 365, description="seconds between reconciliations (full syncs reporting drift)"
    )
    webhooks: bool | None = Field(None, description="whether webhooks feed the connection (else it is polled)")


class SyncOut(BaseModel):
    """Where a connection's continuity stands: its policy, change source, polls, lag and last reconciliation."""

    tenant: str
    connection: str
    app: str
    state: str = Field(description="active, paused or needs_reauth, with the reason")
    change_source: str = Field(description="webhooks, poll (the app's incremental API) or scan-diff")
    poll_every: int
    reconcile_every: int
    imported: str
    last_poll: str
    last_poll_error: str = Field(
        "-", description="when and why the last poll failed (an error, or past its time limit); - when it went through"
    )
    next_poll: str
    lag_seconds: float | None
    last_reconcile: str
    drift: dict[str, int] = Field(description="what the last reconciliation found the change source had missed")
    requested: Literal["import", "reconcile"] | None = Field(
        description="work asked for out of turn, submitted at the scheduler's next tick (within about 20 s)"
    )


class StatusRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    tenant: str
    connection: str
    app: str
    change_source: str | None = Field(
        None, description="webhook (with the subscription's expiry) + poll, or poll / scan-diff (and why no webhook)"
    )
    last_full_import: str
    import_state: str
    last_poll: str
    records: int
    inbox: int
    lag_seconds: float
    outbox_pending: int
    outbox_deferred: int
    dead_letters: int
    quarantined: int
    auth: str
    last_incremental: str | None = None
    last_error: str | None = None


class StatusOut(BaseModel):
    connections: list[StatusRow]
    history: bool = Field(description="whether Prefect's run history is in the rows (a Prefect server answered)")


class EffectiveFieldOut(_Out):
    target: str
    expression: str
    level: str
    origin: str


class MappingOut(_Out):
    tenant: str
    connection: str | None
    data_source: str
    fields: list[EffectiveFieldOut]
    stored: dict[str, dict[str, str | None]]
    lookups: dict[str, int]
    app_schema: dict[str, Any] | None
    udm_fields: list[str]


class MappingChangeIn(BaseModel):
    connection: str | None = Field(None, description="the connection's layer; none: the tenant's layer")
    data_source: str = "users"
    set: dict[str, str | None] = Field(default_factory=dict, description="field -> expression; null removes it")
    unset: list[str] = Field(default_factory=list, description="fields taken from the lower layers again")


class ValidationOut(BaseModel):
    valid: bool
    error: str | None


class ResetOut(BaseModel):
    reset: bool = Field(description="false when nothing was stored")


class PreviewIn(BaseModel):
    connection: str = Field(description="whose stored records to map")
    level: Literal["tenant", "connection"] = "tenant"
    data_source: str = "users"
    set: dict[str, str | None] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)
    limit: int = Field(5, ge=1, le=50)


class PreviewRecordOut(_Out):
    external_id: str
    raw: dict[str, Any]
    mapped: dict[str, Any] | None
    error: str | None


class PreviewOut(_Out):
    records: list[PreviewRecordOut]
    checked: int
    would_quarantine: int
    quarantined_now: int
    mapping_error: str | None


class QuarantinedOut(_Out):
    id: int
    connection_id: str
    data_source: str
    external_id: str
    raw: str
    error: str
    run_id: str
    created_at: datetime


class RetryIn(BaseModel):
    connection: str
    ids: list[int] = Field(default_factory=list, description="only these; none: every quarantined record")


class PoisonOut(_Out):
    """A change event set aside from a connection's inbox, and why (a hostile id is shown cut short)."""

    id: int
    connection_id: str
    external_id: str
    kind: str = Field(description="upsert or delete")
    source: str = Field(description="webhook or poll")
    reason: str
    quarantined_at: datetime


class PoisonChoiceIn(BaseModel):
    """Which of the tenant's poison events: these ids, or all of them (one of the two, said explicitly)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(None, min_length=1, max_length=500, description="inbox event ids")
    all: bool = Field(False, description="every poison event of the tenant (instead of ids)")

    @model_validator(mode="after")
    def _one_choice(self) -> PoisonChoiceIn:
        if (self.ids is None) == (not self.all):
            raise ValueError("give either ids or all: true, not both and not neither")
        if self.ids is not None and any(not 1 <= i <= MAX_ROW_ID for i in self.ids):
            raise ValueError("ids are positive integers, as listed by GET .../inbox/poison")
        return self


class PoisonCount(BaseModel):
    events: int = Field(description="how many poison events this changed (ids of other tenants are ignored)")


class DestinationOut(_Out):
    destination: str
    pending: int
    parked: int
    dead: int
    oldest_age_seconds: float | None
    breaker: str = Field(description="closed, open, half_open, or refused (the app answered 401/403)")
    next_probe: str
    last_error: str = Field(default="-", description="while the breaker is not closed: why, with the fix")


class DeliveryOut(_Out):
    id: int
    tenant_id: str
    connection_id: str
    external_id: str
    type: str
    attempts: int
    next_attempt_at: datetime | None
    dead_at: datetime | None
    last_error: str | None


class ReplayIn(BaseModel):
    ids: list[int] | None = None
    tenant: str | None = None
    all: bool = Field(False, description="every dead letter (when neither ids nor tenant is given)")


class Replayed(BaseModel):
    replayed: int


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["read", "write", "admin"]] = Field(min_length=1)


class ApiKeyOut(_Out):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; only its SHA-256 is kept")


class AuditOut(_Out):
    id: int
    at: datetime
    actor: str
    action: str
    tenant_id: str | None
    target: str | None
    status: int
