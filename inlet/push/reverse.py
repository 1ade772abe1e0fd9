"""The reverse mapping: an app record -> the UDM -> the external app's fields, per connection.

Step one is layered like the import's mapping (default `mappings/reverse/<ds>.yaml`, the app's layer, the
tenant's files and stored layers; sandboxed expressions, compiled once). Step two is the connector's: the inverse
of each plain `udm_fields` reference (`full_name: "{{ raw.name }}"` makes `name` written from `full_name`),
where its `writes.fields` lists that external field as writable. A UDM
field with a value and no external field to go to is dropped with a notice naming it, never silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import Environment, TemplateSyntaxError, meta
from pydantic import BaseModel, ValidationError

from mappings import CompiledMapping, Layer, RecordError, TemplateError, compile_mapping, effective_mapping
from mappings.engine import defaulted_path, plain_path
from mappings.udm import UDMS

__all__ = ["ConflictPolicy", "Reversed", "ReverseMapper", "READ_ONLY", "reverse_layers_name"]

READ_ONLY = frozenset({"id", "created_at", "updated_at"})  # system fields: the app keeps them, inlet never writes
Side = Literal["app", "external"]
_MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


def reverse_layers_name(data_source: str) -> str:
    """The name the reverse mapping's layers go by (files and stored overrides)."""
    return f"reverse/{data_source}"


@dataclass(frozen=True)
class ConflictPolicy:
    """Who wins a field both sides changed since the last sync: the later writer, or the field's owner."""

    policy: Literal["last_writer", "app", "external"] = "last_writer"
    fields: Mapping[str, Side] = field(default_factory=dict)

    def owner(self, udm_field: str) -> Side | None:
        """The side that owns the field, or None when the later writer wins it."""
        side = self.fields.get(udm_field)
        if side is not None:
            return side
        return None if self.policy == "last_writer" else self.policy

    @classmethod
    def read(cls, data_source: str, app: str) -> ConflictPolicy:
        document: dict[str, Any] = {}
        for path in (
            _MAPPINGS / "reverse" / f"{data_source}.yaml",
            _MAPPINGS / "apps" / app / "reverse" / f"{data_source}.yaml",
        ):
            if path.is_file():
                loaded = yaml.safe_load(path.read_text()) or {}
                conflicts = loaded.get("conflicts") or {}
                if not isinstance(conflicts, dict):
                    raise TemplateError(f"{path}: `conflicts:` must be a table", origin=str(path))
                document = {
                    **document,
                    **conflicts,
                    "fields": {**document.get("fields", {}), **(conflicts.get("fields") or {})},
                }
        policy = document.get("policy", "last_writer")
        fields = document.get("fields", {})
        if policy not in ("last_writer", "app", "external") or any(
            v not in ("app", "external") for v in fields.values()
        ):
            raise TemplateError(
                f"reverse mapping of {data_source!r}: conflicts.policy must be last_writer, app or external, "
                "and each conflicts.fields entry app or external"
            )
        return cls(policy, dict(fields))


@dataclass(frozen=True)
class Reversed:
    """One app record, reversed: the external fields to write (by external path), the UDM values they came
    from (by UDM field), and the notices about fields that were dropped."""

    fields: dict[str, Any]
    sources: dict[str, str]  # external path -> UDM field
    notices: list[str]


class ReverseMapper:
    """Reverses app records of one data source for one connection's app."""

    def __init__(
        self,
        *,
        data_source: str,
        app: str,
        to_udm: CompiledMapping,
        to_external: Mapping[str, str],
        write_paths: Mapping[str, str] | None = None,
        app_fields: frozenset[str] = frozenset(),
        conflicts: ConflictPolicy | None = None,
    ) -> None:
        if data_source not in UDMS:
            raise TemplateError(f"unknown data source {data_source!r}; known: {sorted(UDMS)}")
        self.data_source, self.app = data_source, app
        self._udm: type[BaseModel] = UDMS[data_source]
        self.to_udm = to_udm
        self.app_fields = app_fields | _names(to_udm.templates.values())
        self.conflicts = conflicts or ConflictPolicy()
        self._writers = compile_mapping(dict(to_external), origin=f"connectors/{app} writes")
        self.writable = {udm for udm in (_single_source(t) for t in to_external.values()) if udm}
        self._sources = {path: _single_source(t) or "" for path, t in to_external.items()}
        self.write_paths = dict(write_paths or {path: path for path in to_external})

    def body(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The fields (by the path a read record shows them at) by the names the app's writes take."""
        return {self.write_paths.get(path, path): value for path, value in fields.items()}

    def reverse(self, record: Mapping[str, Any], external_id: str | None = None) -> Reversed:
        """The external fields for one app record; RecordError when an expression fails or the UDM refuses it."""
        context: dict[str, Any] = dict.fromkeys(self.app_fields)
        context.update(record)
        context["record"] = record
        values = {k: v for k, v in self.to_udm.render(context).items() if v is not None and v != ""}
        try:
            udm = self._udm.model_validate({**values, "id": external_id or "new"})
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"])
            raise RecordError(f"UDM field {name!r}: {first['msg']}", field=name) from None
        given = set(values)
        udm_values = {k: v for k, v in udm.__dict__.items() if k not in READ_ONLY}
        rendered = self._writers.render(udm_values)
        fields = {path: value for path, value in rendered.items() if value is not None and value != ""}
        written = {self._sources[path] for path in fields}
        notices = [
            f"field {name!r}: {self.app} cannot write it; dropped" for name in sorted(given - written - READ_ONLY)
        ]
        notices += [f"field {name!r}: a system field of {self.app}; dropped" for name in sorted(given & READ_ONLY)]
        return Reversed(fields, {p: self._sources[p] for p in fields}, notices)


def build_reverse(
    data_source: str,
    app: str,
    udm_fields: Mapping[str, str],
    *,
    writable: frozenset[str],
    paths: Mapping[str, str] | None = None,
    app_fields: frozenset[str] = frozenset(),
    tenant: str | None = None,
    connection: str | None = None,
    overrides_dir: Path | None = None,
    stored: Mapping[Literal["tenant", "connection"], Layer] | None = None,
) -> ReverseMapper:
    """The reverse mapper of one connection; a bad layer fails here, naming its file and field."""
    to_udm = effective_mapping(
        reverse_layers_name(data_source),
        app=app,
        tenant=tenant,
        connection=connection,
        overrides_dir=overrides_dir,
        stored=stored,
    )
    inverse = inverse_fields(udm_fields, paths)
    write_paths = {read: written for read in inverse if (written := write_path(read, writable)) is not None}
    to_external = {path: t for path, t in inverse.items() if path in write_paths}
    return ReverseMapper(
        data_source=data_source,
        app=app,
        to_udm=to_udm,
        to_external=to_external,
        write_paths=write_paths,
        app_fields=app_fields,
        conflicts=ConflictPolicy.read(data_source, app),
    )


def write_path(read_path: str, writable: frozenset[str]) -> str | None:
    """Where a field a record shows at `read_path` is written: the longest tail of the path the app lists as
    writable (HubSpot shows `properties.email` and writes `email`), else the whole path when its head is
    writable (Zendesk's `user_fields.company`); None when the app cannot write it."""
    steps = read_path.split(".")
    for start in range(len(steps)):
        if ".".join(steps[start:]) in writable:
            return ".".join(steps[start:])
    return read_path if steps[0] in writable else None


def inverse_fields(udm_fields: Mapping[str, str], paths: Mapping[str, str] | None = None) -> dict[str, str]:
    """External path -> `{{ udm_field }}` for each udm_fields entry that is a plain reference into `raw`, and
    for each UDM field the connector's `writes.paths` places (where its udm_fields entry is an expression)."""
    inverse: dict[str, str] = {path: "{{ " + udm_field + " }}" for udm_field, path in (paths or {}).items()}
    for udm_field, template in udm_fields.items():
        if udm_field in READ_ONLY:
            continue
        path = plain_path(template) or (defaulted_path(template) or ([], None))[0]
        if len(path) >= 2 and path[0] == "raw":
            inverse[".".join(path[1:])] = "{{ " + udm_field + " }}"
    return inverse


def _names(templates: Iterable[str]) -> frozenset[str]:
    """Every variable the reverse expressions read: an app record without one of them reads it as none."""
    env = Environment(autoescape=False)  # parsing only; rendering is the sandbox's  # noqa: S701
    names: set[str] = set()
    for template in templates:
        try:
            names |= meta.find_undeclared_variables(env.parse(template))
        except TemplateSyntaxError:
            continue  # compile_expression already refused it
    return frozenset(names - {"record", "lookups"})


def _single_source(template: str) -> str | None:
    path = plain_path(template) or (defaulted_path(template) or ([], None))[0]
    return path[0] if len(path) == 1 else None
