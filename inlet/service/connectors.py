"""The connector catalogue: what each connector supports and the form that connects an account, as JSON Schema.

The form is derived from connector.yaml: its parameters (a default makes one optional), the credential
names its `auth` needs (plus `webhook_secret` where the app sends webhooks), and its OAuth grants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.registry import available, load
from inlet.errors import NotFound
from inlet.push.reverse import READ_ONLY, inverse_fields, write_path
from inlet.service.paging import Page, checked_limit, decode_cursor, page_of

__all__ = ["ConnectorInfo", "WEBHOOK_SECRET", "connector_catalogue", "connector_info", "connector_page"]

WEBHOOK_SECRET = "webhook_secret"


@dataclass(frozen=True)
class ConnectorInfo:
    name: str
    title: str
    supports: list[str]
    oauth_grants: list[str]
    auth_schema: dict[str, Any] = field(repr=False)
    writable_fields: dict[str, str | None] = field(default_factory=dict)  # UDM field -> the app's field, or None

    @property
    def credential_names(self) -> list[str]:
        return list(self.auth_schema["properties"]["credentials"]["properties"])

    def tenant_parameters(self, preset: dict[str, str]) -> list[str]:
        """The parameters a tenant must give on a page: required ones (no default) the backend did not set."""
        schema = self.auth_schema["properties"]["parameters"]
        return [name for name in schema.get("required", []) if name not in preset]


def connector_catalogue() -> list[ConnectorInfo]:
    return [connector_info(name) for name in available()]


def connector_page(*, cursor: str | None = None, limit: int = 100) -> Page[ConnectorInfo]:
    after = decode_cursor(cursor, str)
    names = [name for name in available() if after is None or name > str(after)][: checked_limit(limit) + 1]
    return page_of([connector_info(name) for name in names], limit, lambda c: c.name)


def connector_info(name: str) -> ConnectorInfo:
    if name not in available():
        raise NotFound(f"no connector {name!r}; available: {', '.join(available())}")
    spec, hooks = load(name)
    collection = spec.collections[spec.collection_for("users")]
    supports = ["list"] + [
        label
        for label, present in (
            ("get", collection.get is not None),
            ("changes", collection.changes is not None or hooks.changes is not None),
            ("deletions", (collection.changes is not None and collection.changes.deleted is not None) or hooks.changes),
            ("webhooks", hooks.verify_webhook is not None),
            *(
                (kind, collection.writes is not None and getattr(collection.writes, kind) is not None)
                for kind in ("create", "update", "delete")
            ),
        )
        if present
    ]
    writable = frozenset(collection.writes.fields) if collection.writes else frozenset()
    inverse = {
        template.strip("{} "): path
        for path, template in inverse_fields(
            collection.udm_fields, collection.writes.paths if collection.writes else None
        ).items()
    }
    fields = {udm: write_path(inverse[udm], writable) if udm in inverse else None for udm in collection.udm_fields}
    return ConnectorInfo(
        name=name,
        title=spec.title,
        supports=supports,
        oauth_grants=sorted(spec.oauth),
        auth_schema=_auth_schema(name, webhooks="webhooks" in supports),
        writable_fields={udm: path for udm, path in fields.items() if udm not in READ_ONLY},
    )


def _auth_schema(name: str, *, webhooks: bool) -> dict[str, Any]:
    spec, _ = load(name)
    parameters: dict[str, Any] = {}
    for key, parameter in spec.parameters.items():
        prop: dict[str, Any] = {"type": "string", "title": key.replace("_", " "), "description": parameter.description}
        if parameter.default is not None:
            prop["default"] = parameter.default
        pattern = getattr(parameter, "pattern", None)
        if isinstance(pattern, str):
            prop["pattern"] = pattern
        parameters[key] = prop
    if webhooks:
        parameters["webhook_account"] = {
            "type": "string",
            "title": "webhook account",
            "description": "the account the app's webhooks name, for POST /webhooks/" + name,
        }
    secret = {"type": "string", "format": "password", "writeOnly": True, "minLength": 1}
    keys = list(spec.auth.required_keys())
    credentials = {key: {**secret, "title": key.replace("_", " ")} for key in keys}
    if webhooks:
        credentials[WEBHOOK_SECRET] = {
            **secret,
            "title": "webhook secret",
            "description": "verifies the app's webhooks",
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Connect {spec.title}",
        "type": "object",
        "properties": {
            "parameters": {
                "type": "object",
                "properties": parameters,
                "required": [k for k, p in spec.parameters.items() if p.default is None],
                "additionalProperties": False,
            },
            "credentials": {
                "type": "object",
                "properties": credentials,
                "required": keys,
                "additionalProperties": False,
            },
        },
        "required": ["parameters", "credentials"],
        "x-oauth": {grant: {"scopes": list(o.scopes)} for grant, o in spec.oauth.items()},
    }
