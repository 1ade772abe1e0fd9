"""The service layer: every operation on tenants, connections, mappings, runs, quarantine and deliveries, and on
who may call them. The CLI, the HTTP API (`inlet.api`) and the tenant pages (`inlet.pages`) are thin clients.

    inst = open_installation(get_settings())
    create_tenant(inst, "acme")
    create_connection(inst, tenant_id="acme", connection_id="acme-hubspot", app="hubspot", parameters={...},
                      credentials={"token": SecretStr(...)})      # checked with one read-only request first
    preview_mapping(inst, "acme", "acme-hubspot", MappingChange(set_fields={"title": "{{ title | upper }}"}))

Sync policy (pause, resume, intervals) and reconciliation join as `inlet.service.sync`: `pause_connection`,
`resume_connection`, `set_sync_policy`, `sync_policy` and `start_reconciliation`, each taking the installation,
the tenant and the connection like the operations here.
"""

from inlet.service.access import (
    OPERATOR,
    SCOPES,
    Principal,
    Scope,
    audit_log,
    authenticate,
    authorize,
    check_rate,
    create_api_key,
    create_connect_session,
    list_keys,
    record_audit,
    revoke_key,
)
from inlet.service.connections import (
    ConnectionView,
    check_credentials,
    connect_app_only,
    create_connection,
    delete_connection,
    describe_connection,
    list_connections,
    oauth_link,
    oauth_tokens,
    start_oauth,
)
from inlet.service.connectors import WEBHOOK_SECRET, ConnectorInfo, connector_catalogue, connector_info
from inlet.service.deliveries import (
    OutboxEntry,
    delivery_status,
    list_deliveries,
    purge_dead_letters,
    replay_dead_letters,
)
from inlet.service.installation import Installation, open_installation
from inlet.service.mappings import (
    EffectiveField,
    MappingChange,
    MappingView,
    Preview,
    PreviewRecord,
    app_schema,
    layer_label,
    mapping_view,
    preview_mapping,
    reset_mapping,
    set_mapping,
    source_fields,
    validate_mapping,
)
from inlet.service.paging import MAX_LIMIT, Page, all_items
from inlet.service.quarantine import (
    drop_quarantine,
    list_quarantine,
    retry_quarantine_here,
    show_quarantined,
    start_retry,
)
from inlet.service.runs import StartedRun, run_here, start_full_import, start_quarantine_retry
from inlet.service.setup import initialise
from inlet.service.status import StatusReport, connection_status, run_history, status_report
from inlet.service.tenants import create_tenant, get_tenant, list_tenants, require_tenant

__all__ = [
    "MAX_LIMIT",
    "OPERATOR",
    "SCOPES",
    "WEBHOOK_SECRET",
    "all_items",
    "app_schema",
    "ConnectionView",
    "ConnectorInfo",
    "EffectiveField",
    "Installation",
    "MappingChange",
    "MappingView",
    "OutboxEntry",
    "Page",
    "Preview",
    "PreviewRecord",
    "Principal",
    "Scope",
    "StartedRun",
    "StatusReport",
    "audit_log",
    "authenticate",
    "authorize",
    "check_credentials",
    "check_rate",
    "connect_app_only",
    "connection_status",
    "connector_catalogue",
    "connector_info",
    "create_api_key",
    "create_connect_session",
    "create_connection",
    "create_tenant",
    "delete_connection",
    "delivery_status",
    "describe_connection",
    "drop_quarantine",
    "get_tenant",
    "initialise",
    "layer_label",
    "list_connections",
    "list_deliveries",
    "list_keys",
    "list_quarantine",
    "list_tenants",
    "mapping_view",
    "oauth_link",
    "oauth_tokens",
    "open_installation",
    "preview_mapping",
    "purge_dead_letters",
    "record_audit",
    "replay_dead_letters",
    "require_tenant",
    "reset_mapping",
    "retry_quarantine_here",
    "revoke_key",
    "run_here",
    "run_history",
    "set_mapping",
    "show_quarantined",
    "source_fields",
    "start_full_import",
    "start_oauth",
    "start_quarantine_retry",
    "start_retry",
    "status_report",
    "validate_mapping",
]
