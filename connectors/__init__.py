"""The connector framework: one declarative spec per external app (connector.yaml plus hooks where the API is
odd), the one page loop, incremental pulls, webhooks, OAuth grants and the error tree. Knows httpx and pydantic,
never Prefect or the store.

    connector = open_connector("hubspot", parameters=..., credentials=...)
    async for page in connector.pages("contacts"): ...
    changes = await pull_changes(connector, "contacts", since)
"""

from connectors.base import Connector, Hooks, PageGuard
from connectors.base_types import Page, PageRequest
from connectors.budget import RequestBudget, full_jitter
from connectors.changes import Change, ChangePage, ChangeSet
from connectors.check import CheckResult, run_checks
from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    NeedsReauth,
    RetryableError,
    SinceExpired,
    SpecError,
    WebhookRejected,
    WriteConflict,
    WriteRejected,
    parse_retry_after,
)
from connectors.hints import confirm_hint
from connectors.incremental import change_pages, pull_changes
from connectors.oauth import Grant, InvalidGrant, OAuth2Auth, OAuth2Spec, OAuthClient, TokenSet
from connectors.redaction import Redactor, install_log_redaction, redact
from connectors.registry import available, load, open_connector
from connectors.spec import RESERVED_PARAMETERS, ConnectorSpec, RateLimit, RetryPolicy
from connectors.webhooks import WebhookEvent, WebhookRequest
from connectors.write_batch import write_batch
from connectors.write_spec import WritesSpec
from connectors.writes import (
    WriteOp,
    WriteResult,
    event_by_inlet,
    find_existing,
    modified_by_inlet,
    write,
    writes_of,
)

__all__ = [
    "RESERVED_PARAMETERS",
    "AuthError",
    "Change",
    "ChangePage",
    "ChangeSet",
    "CheckResult",
    "Connector",
    "ConnectorError",
    "ConnectorSpec",
    "FatalError",
    "Grant",
    "Hooks",
    "InvalidGrant",
    "NeedsReauth",
    "OAuth2Auth",
    "OAuth2Spec",
    "OAuthClient",
    "TokenSet",
    "Page",
    "PageGuard",
    "PageRequest",
    "RateLimit",
    "Redactor",
    "RequestBudget",
    "RetryPolicy",
    "RetryableError",
    "SinceExpired",
    "SpecError",
    "WebhookEvent",
    "WebhookRejected",
    "WebhookRequest",
    "WriteConflict",
    "WriteOp",
    "WriteRejected",
    "WriteResult",
    "WritesSpec",
    "available",
    "event_by_inlet",
    "find_existing",
    "modified_by_inlet",
    "change_pages",
    "confirm_hint",
    "full_jitter",
    "install_log_redaction",
    "load",
    "open_connector",
    "parse_retry_after",
    "pull_changes",
    "redact",
    "run_checks",
    "write",
    "write_batch",
    "writes_of",
]
