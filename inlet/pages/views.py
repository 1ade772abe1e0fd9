"""What each page shows and what its forms do, as functions of the service layer (the routes only render)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from inlet import service
from inlet.errors import ConfigError, NotFound
from inlet.pages.forms import changed_fields, choice_of
from inlet.service import Installation, MappingChange, Principal

__all__ = [
    "ConnectorCard",
    "FieldRow",
    "connect_cards",
    "credential_form",
    "mapping_context",
    "mapping_change",
    "preview_json",
    "status_context",
    "submit_credentials",
]


@dataclass(frozen=True)
class ConnectorCard:
    name: str
    title: str
    oauth: bool
    credentials: bool
    connected: bool


@dataclass(frozen=True)
class FieldRow:
    name: str
    index: int
    required: bool
    type: str
    choice: str
    expression: str


def connect_cards(inst: Installation, principal: Principal) -> list[ConnectorCard]:
    """The session's connectors: OAuth where the app has it and the operator registered a client, else a form."""
    connected = {
        c.app for c in service.all_items(lambda cur: service.list_connections(inst, _tenant(principal), cursor=cur))
    }
    cards = []
    for name in principal.connectors:
        info = service.connector_info(name)
        cards.append(
            ConnectorCard(
                name, info.title, service.oauth_available(inst, name), bool(info.credential_names), name in connected
            )
        )
    return cards


def credential_form(principal: Principal, app: str) -> dict[str, Any]:
    """The fields the tenant fills in: required parameters the backend did not set, and the credentials."""
    service.authorize(principal, "write", tenant=principal.tenant, connector=app)
    info = service.connector_info(app)
    schema = info.auth_schema["properties"]
    parameters = schema["parameters"]["properties"]
    credentials = schema["credentials"]
    return {
        "connector": info,
        "parameters": [
            (name, parameters[name]) for name in info.tenant_parameters(dict(principal.parameters.get(app, {})))
        ],
        "credentials": [(name, credentials["properties"][name]) for name in credentials["required"]],
    }


def submit_credentials(inst: Installation, principal: Principal, app: str, form: Mapping[str, str]) -> None:
    """Check the credentials with the app, then save the connection (CredentialsRefused and nothing saved if not)."""
    fields = credential_form(principal, app)
    parameters = {name: form.get(f"param.{name}", "").strip() for name, _ in fields["parameters"]}
    credentials = {name: SecretStr(form.get(f"secret.{name}", "")) for name, _ in fields["credentials"]}
    empty = [name for name, value in parameters.items() if not value]
    empty += [name for name, value in credentials.items() if not value.get_secret_value()]
    if empty:
        raise ConfigError(f"please fill in {', '.join(empty)}")
    service.connect_with_credentials(
        inst,
        principal,
        tenant=_tenant(principal),
        app=app,
        connection_id=None,
        parameters=parameters,
        credentials=credentials,
        replace=True,
    )


def status_context(inst: Installation, principal: Principal) -> dict[str, Any]:
    report = service.status_report(inst, _tenant(principal))
    return {"rows": report.connections, "history": report.history}


def mapping_context(
    inst: Installation, principal: Principal, connection: str | None, form: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The editor: one row per field of the app schema (and of the mapping), with what it maps from now (or, after a
    refused save or a preview, what the form said)."""
    tenant = _tenant(principal)
    connections = [c.id for c in service.all_items(lambda cur: service.list_connections(inst, tenant, cursor=cur))]
    if connection is not None and connection not in connections:
        raise NotFound(f"tenant {tenant!r} has no connection {connection!r}")
    chosen = connection or (connections[0] if connections else None)
    view = service.mapping_view(inst, tenant, None)
    udm = set(view.udm_fields)
    rows = []
    for index, (name, required, kind) in enumerate(_field_list(view)):
        current = next((f.expression for f in view.fields if f.target == name), None)
        choice, expression = choice_of(current, udm)
        if form and f"choice.{name}" in form:
            choice, expression = form[f"choice.{name}"], form.get(f"expr.{name}", "")
        rows.append(FieldRow(name, index, required, kind, choice, expression))
    sources = service.source_fields(inst, tenant, chosen) if chosen else []
    return {
        "rows": rows,
        "udm_fields": view.udm_fields,
        "sources": sources,
        "connections": connections,
        "connection": chosen,
    }


def mapping_change(inst: Installation, principal: Principal, form: Mapping[str, str]) -> MappingChange:
    """The change the editor's form asks for: only the fields that differ from the tenant's mapping now."""
    view = service.mapping_view(inst, _tenant(principal), None)
    current = {f.target: f.expression for f in view.fields}
    names = [name for name, _, _ in _field_list(view)]
    return MappingChange(set_fields=changed_fields(form, current, names, set(view.udm_fields)))


def preview_json(inst: Installation, principal: Principal, form: Mapping[str, str]) -> dict[str, Any]:
    """The preview of the form's mapping on the chosen connection's stored records, for the page's script."""
    connection = form.get("connection", "")
    preview = service.preview_mapping(
        inst, _tenant(principal), connection, mapping_change(inst, principal, form), limit=3
    )
    return {
        "records": [{"external_id": r.external_id, "mapped": r.mapped, "error": r.error} for r in preview.records],
        "checked": preview.checked,
        "would_quarantine": preview.would_quarantine,
        "quarantined_now": preview.quarantined_now,
        "mapping_error": preview.mapping_error,
    }


def _field_list(view: service.MappingView) -> list[tuple[str, bool, str]]:
    """(name, required, type) of the app schema's fields, then the mapping's other targets."""
    schema = view.app_schema or {}
    properties: dict[str, Any] = schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required", [])) if isinstance(schema.get("required"), list) else set()
    rows = [(name, name in required, _type_label(prop)) for name, prop in properties.items()]
    rows += [(f.target, False, "") for f in view.fields if f.target not in properties]
    return rows


def _type_label(prop: Any) -> str:
    kind = prop.get("type", "") if isinstance(prop, dict) else ""
    return " or ".join(k for k in kind if k != "null") if isinstance(kind, list) else str(kind)


def _tenant(principal: Principal) -> str:
    assert principal.tenant is not None  # pages open only with a connect session
    return principal.tenant
