"""`connector.yaml`, validated: what one external app looks like to inlet.

```yaml
name: hubspot
title: HubSpot CRM
base_url: https://api.hubapi.com
auth: {type: bearer}
collections:
  contacts:
    udm: users
    list:
      path: /crm/v3/objects/contacts
      records_path: results
      paginator: {type: cursor, cursor_path: paging.next.after, param: after, limit_param: limit, page_size: 100}
    get: {path: "/crm/v3/objects/contacts/{id}"}
    udm_fields: {id: "{{ raw.id }}", email: "{{ raw.properties.email }}"}
```

A bad file raises `SpecError` naming the file, the dotted path of the bad key and what was expected.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.auth import AuthSpec, NoAuth
from connectors.errors import SpecError
from connectors.oauth import Grant, OAuth2Spec
from connectors.pagination import Paginator, SinglePage
from connectors.parameters import ParameterSpec, TemplateKind, check_templates
from connectors.write_spec import WritesSpec

__all__ = [
    "CollectionSpec",
    "ConnectorSpec",
    "GetSpec",
    "ListSpec",
    "ParameterSpec",
    "RateLimit",
    "ChangesSpec",
    "DeletedRule",
    "ExpiredRule",
    "PositionSpec",
    "RetryPolicy",
    "SyncDefaults",
    "load_spec",
    "placeholders",
    "RESERVED_PARAMETERS",
]


# Connection parameters inlet itself reads, accepted by every connector (not sent to the app).
# `write_user`: the app's id of the user inlet writes as, where records name their last modifier (issue 20).
RESERVED_PARAMETERS = frozenset({"webhook_account", "write_user"})


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RetryPolicy(_Strict):
    """In-process retries of one request: full-jitter exponential backoff, honouring Retry-After."""

    attempts: int = Field(6, ge=1, description="tries per request, the first included")
    backoff_seconds: float = Field(0.5, ge=0)
    max_backoff_seconds: float = Field(30.0, ge=0)
    max_wait_seconds: float = Field(120.0, ge=0, description="a longer Retry-After is not slept through")


class ListSpec(_Strict):
    """How to list a collection, page by page."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str] = {}
    json_body: dict[str, Any] | None = None
    records_path: str = Field("", description="body path of the record list; empty: the body is the list")
    records_optional: bool = Field(False, description="a page without the records path is an empty page")
    paginator: Paginator = SinglePage()


class GetSpec(_Strict):
    """How to fetch one record by id; a `not_found` status means the record is gone."""

    path: str
    params: dict[str, str] = {}
    record_path: str = ""
    not_found: list[int] = [404, 410]
    id_safe: str = Field("", description="characters left unquoted in {id} (Google's `people/c1` keeps `/`)")

    @model_validator(mode="after")
    def _has_id(self) -> GetSpec:
        if "id" not in placeholders(self.path):
            raise ValueError("get.path must contain {id}")
        return self


class DeletedRule(_Strict):
    """Which change records are deletions: `path` present (Graph `@removed`), or equal to `equals`."""

    path: str
    equals: bool | int | str | None = Field(None, description="unset: deleted when the path is present")


class ExpiredRule(_Strict):
    """The answer that means a stored incremental token is no longer accepted (a full resync follows)."""

    status: list[int] = [410]
    body_contains: str | None = Field(None, description="and the body must contain this text")


class PositionSpec(_Strict):
    """Where the change source stands now, read before a full import enumerates (its first poll continues there).

    `start_time`: the import's start time, `margin_seconds` earlier, in `format` (an `updated_since`-style API).
    `request`: GET `path` with `params` and read the position from the body (`since_path`, e.g. a delta link)
    or a response header (`since_header`, e.g. Kinto's ETag, quotes stripped).
    """

    type: Literal["start_time", "request"]
    format: Literal["epoch_ms", "epoch_s", "iso_z", "iso_ms_z"] = "iso_z"
    margin_seconds: float = Field(5.0, ge=0)
    path: str | None = None
    params: dict[str, str] = {}
    since_path: str | None = None
    since_header: str | None = None

    @model_validator(mode="after")
    def _request_says_where(self) -> PositionSpec:
        if self.type == "request" and (self.path is None or (self.since_path is None) == (self.since_header is None)):
            raise ValueError("a request position needs path and exactly one of since_path or since_header")
        return self


class ChangesSpec(_Strict):
    """How to pull what changed since a stored token `since` (a sync token, a delta link, a timestamp).

    The first pull (no `since`) sends `initial_params`; later ones put `since` in `since_param`, or GET it
    as a URL (`since_is_url`). The next `since` is read from the last page (`since_path`) or is the highest
    value of `since_from_records` seen.
    """

    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str] = {}
    json_body: dict[str, Any] | None = None
    records_path: str = ""
    records_optional: bool = Field(False, description="a page without the records path is an empty page")
    paginator: Paginator = SinglePage()
    initial_params: dict[str, str] = {}
    since_param: str | None = None
    since_is_url: bool = False
    since_path: str | None = None
    since_from_records: str | None = None
    deleted: DeletedRule | None = None
    expired: list[ExpiredRule] = Field([], description="a rule or a list; any match means expired")

    @field_validator("expired", mode="before")
    @classmethod
    def _one_rule_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _one_way_each(self) -> ChangesSpec:
        if (self.since_path is None) == (self.since_from_records is None):
            raise ValueError("set exactly one of since_path or since_from_records")
        if (self.since_param is None) == (not self.since_is_url):
            raise ValueError("set exactly one of since_param or since_is_url: true")
        return self


class CollectionSpec(_Strict):
    """One object type in the app and how its raw record becomes a universal data model (UDM)."""

    udm: str | None = Field(None, description="the UDM this collection provides, e.g. users")
    id_path: str = "id"
    id_pattern: str = Field(
        r"^[A-Za-z0-9_.:@=+/-]{1,200}$", description="what an external id looks like; a change with another is poison"
    )
    updated_at_path: str | None = None
    list: ListSpec
    get: GetSpec | None = None
    changes: ChangesSpec | None = Field(None, description="the app's own incremental API (or a `changes` hook)")
    position: PositionSpec | None = Field(
        None, description="the change source's position, read before a full import (beside `changes:` or a hook)"
    )
    udm_fields: dict[str, str] = Field({}, description="UDM field -> Jinja expression over `raw`")
    other_udms: dict[str, dict[str, str]] = Field(
        {}, description="more UDMs the same records provide: UDM name -> its udm_fields (e.g. contacts)"
    )
    writes: WritesSpec | None = Field(None, description="create / update / delete of these records (issue 20)")

    def fields_for(self, udm: str) -> dict[str, str]:
        """The udm_fields that turn a raw record of this collection into `udm`."""
        return self.udm_fields if udm == self.udm else self.other_udms[udm]


class RateLimit(_Strict):
    """The request budget of one connection: at most `requests` per `per_seconds`."""

    requests: int = Field(gt=0)
    per_seconds: float = Field(gt=0)


class SyncDefaults(_Strict):
    """A new connection's sync policy (`sync:` in connector.yaml); each connection may change it."""

    poll_seconds: int = Field(300, ge=10, description="how often its change source is polled")
    reconcile_seconds: int = Field(86_400, ge=60, description="how often a full sync checks for drift")
    webhooks: bool = Field(False, description="whether webhooks feed it (polls still run as a safety net)")


class ConnectorSpec(_Strict):
    """Everything inlet needs to know to read one external app."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    base_url: str
    auth: AuthSpec = NoAuth()
    oauth: dict[Grant, OAuth2Spec] = Field({}, description="OAuth 2.0 grants a connection may use instead of `auth`")
    headers: dict[str, str] = {}
    parameters: dict[str, ParameterSpec] = {}
    collections: dict[str, CollectionSpec]
    max_pages: int = Field(100_000, ge=1)
    timeout_seconds: float = Field(30.0, gt=0)
    retry: RetryPolicy = RetryPolicy()
    rate_limit: RateLimit | None = Field(None, description="keep each connection under the app's limit")
    origins: list[str] = Field(
        [], description="origins besides base_url's that the connection's credentials may go to (templates)"
    )
    foreign_links: Literal["refuse", "without_credentials"] = Field(
        "refuse", description="a link to another origin: refused, or followed with no credentials at all"
    )
    sync: SyncDefaults = SyncDefaults()

    @model_validator(mode="after")
    def _placeholders_declared(self) -> ConnectorSpec:
        for grant, oauth in self.oauth.items():
            if grant == "authorization_code" and oauth.authorize_url is None:
                raise ValueError("oauth.authorization_code needs an authorize_url")
        used = {field for _, template, _ in self.templates() for field in placeholders(template)}
        unknown = sorted(used - set(self.parameters))
        if unknown:
            raise ValueError(f"placeholders {unknown} are not declared under parameters")
        check_templates(self.parameters, self.templates())
        return self

    def templates(self) -> list[tuple[str, str, TemplateKind]]:
        """Every template that takes `{parameter}` values: where it is, the template, and its kind."""
        found: list[tuple[str, str, TemplateKind]] = [("base_url", self.base_url, "url")]
        found += [(f"origins.{n}", origin, "url") for n, origin in enumerate(self.origins)]
        for name, collection in self.collections.items():
            for kind, call in (("list", collection.list), ("get", collection.get), ("changes", collection.changes)):
                if call is None:
                    continue
                path = call.path.replace("{id}", "") if kind == "get" else call.path  # the record id is not a parameter
                found.append((f"collections.{name}.{kind}.path", path, "path"))
                found += [(f"collections.{name}.{kind}.params.{k}", v, "path") for k, v in call.params.items()]
            if collection.position is not None and collection.position.path is not None:
                found.append((f"collections.{name}.position.path", collection.position.path, "path"))
            for kind, write in collection.writes.calls() if collection.writes else []:
                found.append((f"collections.{name}.writes.{kind}.path", write.path.replace("{id}", ""), "path"))
        for grant, oauth in self.oauth.items():
            found += [(f"oauth.{grant}", url, "oauth") for url in oauth.urls()]
        return found

    def collection_for(self, udm: str) -> str:
        """The name of the collection that provides `udm`."""
        for name, collection in self.collections.items():
            if collection.udm == udm or udm in collection.other_udms:
                return name
        raise KeyError(f"{self.name} has no collection with udm {udm!r}")


def placeholders(template: str) -> set[str]:
    """The `{name}` fields of a str.format template."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def load_spec(path: Path) -> ConnectorSpec:
    """Read and validate a connector.yaml."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read: {exc.strerror}") from None
    if not isinstance(document, dict):
        raise SpecError(f"{path}: expected a mapping at the top, found {type(document).__name__}")
    try:
        return ConnectorSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(_describe(path, exc)) from None


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s):"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        got = error.get("input")
        shown = f" (got {got!r})" if not isinstance(got, dict | list) and got is not None else ""
        lines.append(f"  {where}: {error['msg']}{shown}")
    return "\n".join(lines)
