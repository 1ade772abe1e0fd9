"""Field mappings of a tenant: read each layer, set and validate a change, preview it on the tenant's own stored
records (with the quarantine count it would cause), reset a stored layer.

A change goes to the tenant's layer (`connection=None`) or to one connection's; it is checked against every
connection it affects and the tenant's app schema before anything is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from inlet.mapping import Change, build_mapper, check_change, mapping_for, reset, save, schema_for, stored_layers
from inlet.service.installation import Installation
from inlet.service.tenants import require_tenant
from inlet.store import Connection, load_connection, raw_batches, raw_sample
from mappings import AppSchema, Layer, MappingError, RecordError, effective_mapping
from mappings.loader import MAPPINGS_DIR, StoredLevel
from mappings.udm import UDMS

__all__ = [
    "EffectiveField",
    "app_schema",
    "MappingChange",
    "MappingView",
    "Preview",
    "PreviewRecord",
    "layer_label",
    "mapping_view",
    "preview_mapping",
    "reset_mapping",
    "set_mapping",
    "source_fields",
    "validate_mapping",
]

Level = Literal["default", "app", "file", "tenant", "connection"]


@dataclass(frozen=True)
class MappingChange:
    """Fields to set (None removes the field), fields to unset (back to the lower layers), lookup tables."""

    set_fields: Mapping[str, str | None] = field(default_factory=dict)
    unset_fields: tuple[str, ...] = ()
    lookups: Mapping[str, Mapping[str, Any]] | None = None

    def as_change(self) -> Change:
        return Change(set_fields=dict(self.set_fields), unset_fields=self.unset_fields, lookups=self.lookups)


@dataclass(frozen=True)
class EffectiveField:
    target: str
    expression: str
    level: Level
    origin: str


@dataclass(frozen=True)
class MappingView:
    """The effective mapping field by field, the stored layers, and what an editor offers to choose from."""

    tenant: str
    connection: str | None
    data_source: str
    fields: list[EffectiveField]
    stored: dict[str, dict[str, str | None]]
    lookups: dict[str, int]
    app_schema: dict[str, Any] | None
    udm_fields: list[str]


@dataclass(frozen=True)
class PreviewRecord:
    external_id: str
    raw: dict[str, Any]
    mapped: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class Preview:
    """A change tried on stored records: a few shown, and how many of the first `checked` fail with it (and now)."""

    records: list[PreviewRecord]
    checked: int
    would_quarantine: int
    quarantined_now: int
    mapping_error: str | None = None


def app_schema(
    inst: Installation, tenant: str, data_source: str = "users", *, refresh: bool = False
) -> AppSchema | None:
    """The schema the tenant's records are checked against; None when none is configured."""
    require_tenant(inst, tenant)
    return schema_for(inst.engine, inst.settings, tenant, data_source, refresh=refresh)


def layer_label(origin: str) -> tuple[Level, str]:
    """Which layer an origin names, and how `inlet mappings show` labels it."""
    if origin.startswith("store: "):
        level: Level = "connection" if origin.startswith("store: connection ") else "tenant"
        return level, origin.removeprefix("store: ") + " (store)"
    if origin.startswith(str(MAPPINGS_DIR / "apps")):
        return "app", f"app ({origin})"
    if origin.startswith(str(MAPPINGS_DIR)):
        return "default", f"default ({origin})"
    return "file", f"file ({origin})"


def mapping_view(inst: Installation, tenant: str, connection: str | None, data_source: str = "users") -> MappingView:
    """The effective mapping of the tenant (or of one of its connections), with each field's layer."""
    if connection:
        mapping = mapping_for(inst.engine, inst.settings, _connection(inst, tenant, connection), data_source)
    else:
        require_tenant(inst, tenant)
        mapping = effective_mapping(
            data_source,
            tenant=tenant,
            overrides_dir=inst.settings.mapping_overrides,
            stored=stored_layers(inst.engine, tenant, None, data_source),
        )
    schema = schema_for(inst.engine, inst.settings, tenant, data_source)
    stored = stored_layers(inst.engine, tenant, connection, data_source)
    return MappingView(
        tenant=tenant,
        connection=connection,
        data_source=data_source,
        fields=[
            EffectiveField(target, template, layer_label(mapping.origins[target])[0], mapping.origins[target])
            for target, template in mapping.templates.items()
        ],
        stored={level: dict(layer.fields) for level, layer in stored.items()},
        lookups={name: len(table) for name, table in sorted(mapping.lookups.items())},
        app_schema=dict(schema.document) if schema is not None else None,
        udm_fields=sorted(UDMS[data_source].model_fields) if data_source in UDMS else [],
    )


def set_mapping(
    inst: Installation, tenant: str, connection: str | None, change: MappingChange, data_source: str = "users"
) -> MappingView:
    """Save the change in the tenant's (or connection's) layer when valid; MappingError naming the field if not."""
    require_tenant(inst, tenant)
    save(inst.engine, inst.settings, tenant, connection, data_source, change.as_change())
    return mapping_view(inst, tenant, connection, data_source)


def validate_mapping(
    inst: Installation, tenant: str, connection: str | None, change: MappingChange, data_source: str = "users"
) -> str | None:
    """None when the change would be saved, else the reason it would be refused."""
    require_tenant(inst, tenant)
    try:
        check_change(inst.engine, inst.settings, tenant, connection, data_source, change.as_change())
    except MappingError as exc:
        return str(exc)
    return None


def reset_mapping(inst: Installation, tenant: str, connection: str | None, data_source: str = "users") -> bool:
    """Drop the stored layer (back to the defaults); False when nothing was stored."""
    require_tenant(inst, tenant)
    return reset(inst.engine, inst.settings, tenant, connection, data_source)


def preview_mapping(
    inst: Installation,
    tenant: str,
    connection: str,
    change: MappingChange,
    *,
    level: StoredLevel = "tenant",
    data_source: str = "users",
    limit: int = 5,
    scan: int = 1000,
) -> Preview:
    """Map the connection's stored records with the change in place at `level` (nothing saved)."""
    conn = _connection(inst, tenant, connection)
    current = stored_layers(inst.engine, tenant, connection, data_source)
    layer = current.get(level) or Layer(origin=f"store: {level} {tenant}", fields={})
    fields = {**layer.fields, **change.set_fields}
    for name in change.unset_fields:
        fields.pop(name, None)
    lookups = {**layer.lookups, **{k: dict(v) for k, v in (change.lookups or {}).items()}}
    candidate = {**current, level: Layer(origin=f"preview: {level}", fields=fields, lookups=lookups)}
    schema = schema_for(inst.engine, inst.settings, tenant, data_source)
    try:
        mapper = build_mapper(inst.engine, inst.settings, conn, data_source, schema=None, stored=candidate)
        now = build_mapper(inst.engine, inst.settings, conn, data_source, schema=None, stored=current)
    except MappingError as exc:
        return Preview([], 0, 0, 0, mapping_error=str(exc))
    mismatch = None
    if schema is not None:
        try:
            schema.check_mapping(mapper.app_mapping.templates, tenant=tenant, origins=mapper.app_mapping.origins)
        except MappingError as exc:
            mismatch = str(exc)
    mapper.schema = now.schema = schema  # built without it: a misfit mapping is reported, its records still shown
    records = [
        _preview_one(mapper, external_id, raw)
        for external_id, raw in raw_sample(inst.engine, connection, data_source, limit)
    ]
    checked = failing = failing_now = 0
    for batch in raw_batches(inst.engine, connection, data_source, size=min(scan, 500)):
        for _, raw in batch[: scan - checked]:
            record = orjson.loads(raw)
            failing += _fails(mapper.map, record)
            failing_now += _fails(now.map, record)
            checked += 1
        if checked >= scan:
            break
    return Preview(records, checked, failing, failing_now, mapping_error=mismatch)


def source_fields(
    inst: Installation, tenant: str, connection: str, data_source: str = "users", sample: int = 20
) -> list[str]:
    """Dotted paths of the scalar values in the connection's stored raw records (`properties.email`)."""
    _connection(inst, tenant, connection)
    paths: set[str] = set()
    for _, raw in raw_sample(inst.engine, connection, data_source, sample):
        _collect(orjson.loads(raw), "", paths)
    return sorted(paths)


def _collect(value: Any, prefix: str, paths: set[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(key, str) and key.isidentifier():
                _collect(inner, f"{prefix}.{key}" if prefix else key, paths)
    elif prefix and not isinstance(value, list) and len(paths) < 500:
        paths.add(prefix)


def _preview_one(mapper: Any, external_id: str, raw: str) -> PreviewRecord:
    record = orjson.loads(raw)
    try:
        return PreviewRecord(external_id, record, mapper.map(record), None)
    except RecordError as exc:
        return PreviewRecord(external_id, record, None, str(exc))


def _fails(map_one: Any, record: dict[str, Any]) -> int:
    try:
        map_one(record)
    except RecordError:
        return 1
    return 0


def _connection(inst: Installation, tenant: str, connection: str) -> Connection:
    return load_connection(inst.engine, inst.vault, tenant, connection).connection
