"""inlet's settings, declared once: environment variables `INLET_*` (nested with `__`) or `.inlet/` files.

Per-tenant data (connections, credentials, mappings) lives in the store, not here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.egress import EgressPolicy
from connectors.oauth_endpoints import check_override
from connectors.spec import RateLimit, RetryPolicy
from mappings import MappingBudget

__all__ = [
    "ApiSettings",
    "AppSchemaSettings",
    "DestinationSettings",
    "EgressSettings",
    "ReceiverSettings",
    "Settings",
    "get_settings",
]


class EgressSettings(BaseModel):
    """What connections may reach beyond public addresses: INLET_EGRESS__ALLOW_HOSTS='["127.0.0.1"]'.

    Each entry is a host name or IP address with an optional port ("127.0.0.1:8410"). The egress guard lets
    it through though it is loopback or private, and URL parameters (base_url) may name it though their
    connector declares other hosts. The demo and `inlet up` allow their simulator's address; the tests
    allow 127.0.0.1. OAuth endpoints never take these hosts (see `oauth_endpoints`).
    """

    allow_hosts: list[str] = Field([], description="hosts (or host:port) connections may reach though internal")

    def policy(self) -> EgressPolicy:
        return EgressPolicy(allow_hosts=frozenset(self.allow_hosts))


class DeliveryPolicy(BaseModel):
    """How deliveries to the team's app are batched, retried and budgeted: declared once, for the settings and
    for each tenant's destination."""

    batch_size: int = Field(500, ge=1, le=10_000)
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(8, ge=1, description="tries of one batch within a run before it waits for the next")
    backoff_seconds: float = Field(0.5, ge=0, description="in-run backoff base (full jitter)")
    max_backoff_seconds: float = Field(60.0, ge=0, description="in-run backoff cap; a longer Retry-After defers")
    retry_base_seconds: float = Field(30.0, ge=0, description="first wait of a deferred batch; doubles per attempt")
    retry_cap_seconds: float = Field(3600.0, ge=0, description="longest wait between two attempts of one batch")
    max_age_seconds: float = Field(3 * 86400.0, gt=0, description="a batch older than this becomes a dead letter")
    breaker_threshold: int = Field(5, ge=1, description="consecutive failed attempts that open the breaker")
    breaker_cooldown_seconds: float = Field(30.0, ge=0, description="first probe after opening; doubles per trip")
    concurrency: int = Field(4, ge=1, description="requests in flight to the destination at once")
    rate_per_second: float = Field(50.0, gt=0, description="request budget per second to the destination")
    claim_seconds: float = Field(
        120.0, gt=0, description="a drain's claim on its batch (one sender per row); at least twice the timeout"
    )


class DestinationSettings(DeliveryPolicy):
    """The team's app: where events go and how they are signed and retried."""

    url: str | None = Field(None, description="base URL of the team's app; default: the demo app on demo_app_port")
    path: str = "/inlet/events"
    secret: SecretStr | None = Field(None, description="whsec_... signing secret; default: .inlet/destination.secret")
    previous_secret: SecretStr | None = Field(
        None, description="the secret being rotated out; default: .inlet/destination.secret.previous"
    )
    bearer_token: SecretStr | None = Field(None, description="sent as `Authorization: Bearer ...`")
    oauth_token_url: str | None = Field(None, description="OAuth2 client credentials: the token endpoint")
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_scope: str | None = None


class AppSchemaSettings(BaseModel):
    """Where the JSON Schema of the team's app records comes from (INLET_APP_SCHEMA__SOURCE=app ...)."""

    source: Literal["static", "app"] = Field(
        "static", description="static: <folder>/<data source>.yaml when it exists; app: fetched per tenant"
    )
    folder: Path | None = Field(None, description="static schemas; default <home>/schemas")
    path: str = Field("/inlet/schemas/{data_source}", description="GET {destination}{path}?tenant=<tenant>, signed")
    ttl_seconds: float = Field(3600, ge=0, description="a fetched schema is used this long before it is fetched again")


class ApiSettings(BaseModel):
    """The HTTP API and the tenant pages `inlet serve` adds (INLET_API__SESSION_TTL_SECONDS=600 ...)."""

    public_url: str | None = Field(
        None, description="where tenants' browsers reach `inlet serve`; default http://127.0.0.1:<receiver_port>"
    )
    session_ttl_seconds: float = Field(1800, gt=0, le=86_400, description="longest life of a connect session")
    credential_checks_per_minute: int = Field(10, ge=1, description="per API key or session: connection creations")
    sessions_per_minute: int = Field(30, ge=1, description="per API key: connect sessions created")
    failed_logins_per_minute: int = Field(20, ge=1, description="per client address: unknown keys or sessions")
    frame_ancestors: str = Field(
        "*", description="CSP frame-ancestors of the tenant pages, e.g. https://app.example.com (your product)"
    )


class ReceiverSettings(BaseModel):
    """Where the apps reach the webhook receiver (INLET_RECEIVER__PUBLIC_URL=https://hooks.example.com).

    Without a public URL no app can call inlet, so no webhook subscription is made: connections with webhooks
    on are polled and `inlet status` says webhooks are unavailable.
    """

    public_url: str | None = Field(None, description="the receiver's base URL as the apps on the internet see it")
    subscription_seconds: int | None = Field(
        None, gt=0, description="ask for subscriptions that live at most this long (default: each app's longest)"
    )


class Settings(BaseSettings):
    """Everything that is the same for all tenants of one inlet installation."""

    model_config = SettingsConfigDict(env_prefix="INLET_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path(".inlet"), description="state folder: SQLite store, Prefect home, keys")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<home>/inlet.db")
    secret_key: SecretStr | None = Field(None, description="Fernet key for credentials; default <home>/secret.key")
    secret_key_block: str | None = Field(None, description="or: the name of a Prefect Secret block holding that key")
    overrides_dir: Path | None = Field(None, description="per-tenant mapping files; default <home>/mappings")
    destination: DestinationSettings = DestinationSettings()
    app_schema: AppSchemaSettings = AppSchemaSettings()
    api: ApiSettings = ApiSettings()
    receiver: ReceiverSettings = ReceiverSettings()
    keep_raw: bool = Field(
        True,
        description="keep each record's source payload in the ledger, "
        "for `inlet remap --tenant TENANT --connection CONNECTION`",
    )
    prefect_port: int = 4200
    demo_app_port: int = 8400
    simulator_port: int = 8410
    receiver_port: int = Field(8430, description="the webhook receiver (`inlet serve`) on 127.0.0.1")
    task_worker_port: int = Field(8440, description="the task worker's status server on 127.0.0.1")
    source_retry: RetryPolicy | None = Field(
        None, description="overrides every connector's retry policy (INLET_SOURCE_RETRY__ATTEMPTS=2 ...)"
    )
    source_budget: RateLimit | None = Field(
        None, description="overrides every connector's request budget (INLET_SOURCE_BUDGET__REQUESTS=... )"
    )
    oauth_redirect_url: str | None = Field(
        None,
        description="the OAuth callback registered with each app; default http://127.0.0.1:<receiver_port>/oauth/callback",
    )
    webhook_receipt_seconds: float = Field(
        86_400,
        ge=600,
        description="how long a webhook's receipts (body and event ids) refuse its replays; at least twice the "
        "five-minute signature window, since a timestamp up to five minutes ahead stays valid for ten",
    )
    oauth_endpoints: dict[str, str] = Field(
        {},
        description="per app, an origin that takes the place of the hosts of its OAuth endpoints (a simulator, a "
        "sandbox): INLET_OAUTH_ENDPOINTS__HUBSPOT=http://127.0.0.1:8410. No tenant parameter can move them.",
    )
    egress: EgressSettings = EgressSettings()
    push_echo_window_seconds: float = Field(
        86_400, gt=0, description="how long a write inlet made is remembered, to recognise its echo on the import path"
    )
    mapping_budget: MappingBudget = Field(
        MappingBudget(), description="per-record limits of a mapping (INLET_MAPPING_BUDGET__RECORD_SECONDS=0.25 ...)"
    )
    oauth_state_ttl_seconds: float = Field(600, gt=0, description="how long a consent URL's state stays valid")
    oauth_link_ttl_seconds: float = Field(7 * 86_400, gt=0, description="how long a /oauth/start link works")
    poll_time_limit_seconds: float | None = Field(
        None,
        gt=0,
        description="longest a connection's poll (and the apply of what it heard) may take in a sync-polls batch; "
        "one that runs past it is cancelled and reported as failed, and the batch goes on. Default: the "
        "connection's poll interval, at least 60 s (a stuck poll never outlives the next one's turn)",
    )
    single_flight_lease_seconds: float = Field(
        60, ge=60, description="a crashed run's hold on its connection lapses after this long (Prefect: >= 60)"
    )
    records_per_task: int = Field(
        10_000,
        ge=1,
        description="a list-records task reads pages until it holds this many records (1: a page each); a task run "
        "costs the Prefect server ~30 ms of CPU, so 10,000 keeps it near 2.6 CPU-s per 100k records instead of 9",
    )
    incremental_runner: Literal["deployment", "task-worker"] = Field(
        "deployment",
        description="what applies heard changes: the event-triggered incremental-import deployment (a flow run per "
        "burst, ~2 s to start), or a Prefect task worker (`python -m flows.task_worker`) that starts at once",
    )
    warm_seconds: float = Field(
        3,
        ge=0,
        description="on a task worker, how long an apply-inbox run stays on its connection after the inbox is empty, "
        "applying what arrives without a new run; it keeps the connection's slot and gives it up at once to a run "
        "that waits for it (an import, a reconciliation); 0: leave at once",
    )
    notify_window_seconds: float | None = Field(
        None, gt=0, description="debounce of change notifications per connection; default 1 s, 0.2 s on a task worker"
    )
    max_delete_share: float = Field(
        0.5, ge=0, le=1, description="a sweep refusing to delete more than this share of live records"
    )
    max_quarantine_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="a run that quarantines more than this share of its records fails naming the top reasons "
        "(a broken mapping, not bad records); 1 turns the check off",
    )
    stranded_inbox_seconds: float = Field(
        120, gt=0, description="deliver-outbox's sweep applies inbox changes older than this (their notice was lost)"
    )

    @field_validator("oauth_endpoints")
    @classmethod
    def _origins(cls, value: dict[str, str]) -> dict[str, str]:
        return {app.lower(): check_override(origin) for app, origin in value.items()}

    @property
    def notify_window(self) -> float:
        if self.notify_window_seconds is not None:
            return self.notify_window_seconds
        return 0.2 if self.incremental_runner == "task-worker" else 1.0

    @property
    def destination_url(self) -> str:
        return (self.destination.url or f"http://127.0.0.1:{self.demo_app_port}").rstrip("/")

    @property
    def public_url(self) -> str:
        return (self.api.public_url or f"http://127.0.0.1:{self.receiver_port}").rstrip("/")

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'inlet.db'}"

    @property
    def mapping_overrides(self) -> Path:
        return self.overrides_dir or self.home / "mappings"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    def destination_secret(self) -> SecretStr | None:
        """The signing secret from settings, else from <home>/destination.secret."""
        if self.destination.secret is not None:
            return self.destination.secret
        path = self.home / "destination.secret"
        return SecretStr(path.read_text().strip()) if path.is_file() else None

    def destination_previous_secret(self) -> SecretStr | None:
        """The secret being rotated out, from settings or <home>/destination.secret.previous."""
        if self.destination.previous_secret is not None:
            return self.destination.previous_secret
        path = self.home / "destination.secret.previous"
        return SecretStr(path.read_text().strip()) if path.is_file() else None


@cache
def get_settings() -> Settings:
    return Settings()
