"""Per-tenant and per-connection mapping layers in the store: read them, and save a change only when valid.

A change is checked before anything is written: every expression compiles, and the effective mapping of
each connection it affects fits the tenant's app schema (no unknown target field, no required field left
unmapped). An invalid change raises TemplateError (or SchemaMismatch) naming the tenant, the field and the
reason, and the store keeps what it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlmodel import Session, select

from connectors.registry import load
from inlet.errors import NotFound
from inlet.mapping.app_schemas import schema_for
from inlet.settings import Settings
from inlet.store import Connection, MappingOverride, list_connections, raw_sample, utcnow
from mappings import AppSchema, CompiledMapping, Layer, RecordMapper, effective_mapping
from mappings.loader import StoredLevel

__all__ = ["Change", "build_mapper", "check_change", "mapping_for", "reset", "save", "stored_layers"]

_KEEP: Any = object()
_SAMPLES = 5  # stored records a change is tried on before it is saved, besides a made-up one


@dataclass(frozen=True)
class Change:
    """What to do to one stored layer: set or remove fields (None removes the field from the mapping),
    forget fields (back to the lower layers), replace lookup tables."""

    set_fields: Mapping[str, str | None] | None = None
    unset_fields: tuple[str, ...] = ()
    lookups: Mapping[str, Mapping[str, Any]] | None = None

    def apply(self, row: MappingOverride) -> MappingOverride:
        fields = dict(row.fields)
        fields.update(self.set_fields or {})
        for name in self.unset_fields:
            fields.pop(name, None)
        lookups = {**row.lookups, **{name: dict(table) for name, table in (self.lookups or {}).items()}}
        return MappingOverride(
            tenant_id=row.tenant_id,
            connection_id=row.connection_id,
            data_source=row.data_source,
            fields=fields,
            lookups=lookups,
            updated_at=utcnow(),
        )


def _origin(tenant: str, connection: str) -> str:
    return f"store: connection {connection}" if connection else f"store: tenant {tenant}"


def _layer(row: MappingOverride) -> Layer:
    return Layer(origin=_origin(row.tenant_id, row.connection_id), fields=dict(row.fields), lookups=dict(row.lookups))


def stored_layers(engine: Engine, tenant: str, connection: str | None, data_source: str) -> dict[StoredLevel, Layer]:
    """The tenant's stored layer and, given a connection, that connection's (of this tenant only)."""
    wanted = ["", connection] if connection else [""]
    with Session(engine) as session:
        rows = session.exec(
            select(MappingOverride).where(
                MappingOverride.tenant_id == tenant,
                MappingOverride.data_source == data_source,
                MappingOverride.connection_id.in_(wanted),  # type: ignore[attr-defined]  # a SQLModel column
            )
        ).all()
    layers: dict[StoredLevel, Layer] = {}
    for row in rows:
        layers["connection" if row.connection_id else "tenant"] = _layer(row)
    return layers


def mapping_for(
    engine: Engine,
    settings: Settings,
    connection: Connection,
    data_source: str,
    *,
    stored: Mapping[StoredLevel, Layer] | None = None,
) -> CompiledMapping:
    """The effective mapping of one connection: files and stored layers, later wins field by field."""
    return effective_mapping(
        data_source,
        app=connection.app,
        tenant=connection.tenant_id,
        connection=connection.id,
        overrides_dir=settings.mapping_overrides,
        stored=stored
        if stored is not None
        else stored_layers(engine, connection.tenant_id, connection.id, data_source),
    )


def build_mapper(
    engine: Engine,
    settings: Settings,
    connection: Connection,
    data_source: str,
    *,
    schema: AppSchema | None = _KEEP,
    stored: Mapping[StoredLevel, Layer] | None = None,
) -> RecordMapper:
    """The record mapper of one connection, its mapping checked against the tenant's app schema."""
    spec, _ = load(connection.app)
    collection = connection.collection or spec.collection_for(data_source)
    if schema is _KEEP:
        schema = schema_for(engine, settings, connection.tenant_id, data_source)
    mapping = mapping_for(engine, settings, connection, data_source, stored=stored)
    if schema is not None:
        schema.check_mapping(mapping.templates, tenant=connection.tenant_id, origins=mapping.origins)
    return RecordMapper(
        data_source=data_source,
        udm_fields=spec.collections[collection].fields_for(data_source),
        app_mapping=mapping,
        origin=f"connectors/{connection.app}/connector.yaml",
        lookups=mapping.lookups,
        schema=schema,
        budget=settings.mapping_budget,
    )


def save(
    engine: Engine, settings: Settings, tenant: str, connection: str | None, data_source: str, change: Change
) -> MappingOverride:
    """Apply `change` to the tenant's (or connection's) stored layer, after checking every affected connection."""
    updated = check_change(engine, settings, tenant, connection, data_source, change)
    with Session(engine) as session:
        session.merge(updated)
        session.commit()
    return updated


def check_change(
    engine: Engine, settings: Settings, tenant: str, connection: str | None, data_source: str, change: Change
) -> MappingOverride:
    """The stored layer `change` would make, checked as `save` checks it, but not saved."""
    key = (tenant, connection or "", data_source)
    with Session(engine) as session:
        current = session.get(MappingOverride, key)
        if current is not None:
            session.expunge(current)
    current = current or MappingOverride(tenant_id=tenant, connection_id=connection or "", data_source=data_source)
    updated = change.apply(current)
    _check(engine, settings, tenant, connection, data_source, updated)
    return updated


def reset(engine: Engine, settings: Settings, tenant: str, connection: str | None, data_source: str) -> bool:
    """Drop the stored layer (back to files and lower layers), after checking what remains is valid."""
    empty = MappingOverride(tenant_id=tenant, connection_id=connection or "", data_source=data_source)
    _check(engine, settings, tenant, connection, data_source, empty, removing=True)
    with Session(engine) as session:
        row = session.get(MappingOverride, (tenant, connection or "", data_source))
        if row is None:
            return False
        session.delete(row)
        session.commit()
    return True


def _check(
    engine: Engine,
    settings: Settings,
    tenant: str,
    connection: str | None,
    data_source: str,
    candidate: MappingOverride,
    *,
    removing: bool = False,
) -> None:
    """Build the mapper of every connection the layer applies to, with the candidate layer in place."""
    connections = [c for c in list_connections(engine, tenant) if connection is None or c.id == connection]
    if connection is not None and not connections:
        raise NotFound(f"tenant {tenant!r} has no connection {connection!r}")
    affected = [c for c in connections if c.data_source == data_source]
    schema = schema_for(engine, settings, tenant, data_source)
    level: StoredLevel = "connection" if connection else "tenant"
    for conn in affected:
        stored = stored_layers(engine, tenant, conn.id, data_source)
        if removing:
            stored.pop(level, None)
        else:
            stored[level] = _layer(candidate)
        mapper = build_mapper(engine, settings, conn, data_source, schema=schema, stored=stored)
        samples = [orjson.loads(raw) for _, raw in raw_sample(engine, conn.id, data_source, _SAMPLES)]
        mapper.probe(samples, origin=f"tenant {tenant!r}, connection {conn.id!r}")
    if not affected:  # a tenant without connections yet: check the default and tenant layers alone
        mapping = effective_mapping(
            data_source,
            tenant=tenant,
            overrides_dir=settings.mapping_overrides,
            stored={} if removing else {"tenant": _layer(candidate)},
        )
        if schema is not None:
            schema.check_mapping(mapping.templates, tenant=tenant, origins=mapping.origins)
        alone = RecordMapper(
            data_source=data_source, udm_fields={}, app_mapping=mapping, origin="", budget=settings.mapping_budget
        )
        alone.probe([], origin=f"tenant {tenant!r}")
