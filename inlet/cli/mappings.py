"""`inlet mappings`, `inlet quarantine` and `inlet remap`: per-tenant mappings, quarantined records, re-mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from inlet.cli.common import known_errors as _errors
from inlet.cli.common import pairs as _pairs
from inlet.errors import NotFound
from inlet.local import format_summary, run_flow
from inlet.settings import Settings, get_settings
from inlet.store import open_store

__all__ = ["mappings_app", "quarantine_app", "remap_command"]

mappings_app = typer.Typer(no_args_is_help=True, help="Field mappings per tenant and connection.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Records that failed their mapping or the app schema.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
Connection = Annotated[str, typer.Option("--connection", "-c", help="connection id")]
MaybeConnection = Annotated[
    str | None, typer.Option("--connection", "-c", help="connection id; default: every connection of the tenant")
]
DataSource = Annotated[str, typer.Option(help="the data model")]


def _print(summary: Any) -> None:
    for line in format_summary(summary):
        typer.echo(line)


def _tenant_connection(settings: Settings, tenant: str, connection: str) -> Any:
    from inlet.store import Vault, load_connection

    return load_connection(open_store(settings.store_url), Vault.from_settings(settings), tenant, connection).connection


@mappings_app.command("show")
def mappings_show(tenant: Tenant, connection: MaybeConnection = None, data_source: DataSource = "users") -> None:
    """The effective mapping, field by field, with the layer each field comes from."""
    from inlet.mapping import mapping_for, stored_layers
    from mappings import effective_mapping

    with _errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        if connection:
            mapping = mapping_for(engine, settings, _tenant_connection(settings, tenant, connection), data_source)
        else:
            _check_tenant(engine, tenant)
            stored = stored_layers(engine, tenant, None, data_source)
            mapping = effective_mapping(
                data_source, tenant=tenant, overrides_dir=settings.mapping_overrides, stored=stored
            )
        width = max((len(name) for name in mapping.templates), default=0)
        for target, template in mapping.templates.items():
            typer.echo(f"{target:<{width}}  {template}    [{_layer_name(mapping.origins[target])}]")
        for name, table in mapping.lookups.items():
            typer.echo(f"lookup {name}: {len(table)} entries")


def _layer_name(origin: str) -> str:
    from mappings.loader import MAPPINGS_DIR

    if origin.startswith("store: "):
        return origin.removeprefix("store: ") + " (store)"
    if origin.startswith(str(MAPPINGS_DIR / "apps")):
        return f"app ({origin})"
    if origin.startswith(str(MAPPINGS_DIR)):
        return f"default ({origin})"
    return f"file ({origin})"


@mappings_app.command("set")
def mappings_set(
    tenant: Tenant,
    field: Annotated[str | None, typer.Argument(help="target field of the app record")] = None,
    expression: Annotated[str | None, typer.Argument(help="Jinja expression, e.g. '{{ email | lower }}'")] = None,
    connection: MaybeConnection = None,
    remove: Annotated[bool, typer.Option(help="remove the field from the mapping at this layer")] = False,
    file: Annotated[Path | None, typer.Option(help="a layer YAML file (fields: and lookups:) to store")] = None,
    data_source: DataSource = "users",
) -> None:
    """Set one field (or a YAML file's fields and lookups) in the tenant's or connection's layer, if valid."""
    from inlet.mapping import Change, save
    from mappings import layer_from_document

    with _errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        _check_tenant(engine, tenant)
        if file is not None:
            layer = layer_from_document(yaml.safe_load(file.read_text()), origin=str(file), data_source=data_source)
            change = Change(set_fields=layer.fields, lookups=layer.lookups)
        elif field and (expression is not None or remove):
            change = Change(set_fields={field: None if remove else expression})
        else:
            raise typer.BadParameter("give FIELD EXPRESSION, FIELD --remove, or --file layer.yaml")
        save(engine, settings, tenant, connection, data_source, change)
        typer.echo(f"saved the mapping of {_where(tenant, connection)}")


@mappings_app.command("unset")
def mappings_unset(
    tenant: Tenant,
    fields: Annotated[list[str], typer.Argument(help="fields to take from the lower layers again")],
    connection: MaybeConnection = None,
    data_source: DataSource = "users",
) -> None:
    """Forget fields of the tenant's or connection's stored layer (the lower layers apply again)."""
    from inlet.mapping import Change, save

    with _errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        _check_tenant(engine, tenant)
        save(engine, settings, tenant, connection, data_source, Change(unset_fields=tuple(fields)))
        typer.echo(f"unset {', '.join(fields)} in the mapping of {_where(tenant, connection)}")


@mappings_app.command("reset")
def mappings_reset(tenant: Tenant, connection: MaybeConnection = None, data_source: DataSource = "users") -> None:
    """Drop the tenant's or connection's stored layer."""
    from inlet.mapping import reset

    with _errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        _check_tenant(engine, tenant)
        dropped = reset(engine, settings, tenant, connection, data_source)
        typer.echo(f"{'reset' if dropped else 'nothing stored for'} the mapping of {_where(tenant, connection)}")


@mappings_app.command("preview")
def mappings_preview(
    tenant: Tenant,
    connection: Connection,
    limit: Annotated[int, typer.Option(min=1, help="stored records to show")] = 5,
    set_: Annotated[list[str], typer.Option("--set", help="FIELD=EXPRESSION to try without saving; repeatable")] = [],  # noqa: B006  # typer needs a list default
    data_source: DataSource = "users",
) -> None:
    """Raw -> mapped for a few stored records, with the current mapping or with changes not yet saved."""
    from inlet.mapping import build_mapper, stored_layers
    from inlet.store import raw_sample
    from mappings import Layer, RecordError

    with _errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        conn = _tenant_connection(settings, tenant, connection)
        stored = stored_layers(engine, tenant, connection, data_source)
        if set_:
            current = stored.get("connection", Layer(origin=f"store: connection {connection}", fields={}))
            fields = {**current.fields, **_pairs(set_, "--set")}
            stored["connection"] = Layer(origin="preview", fields=dict(fields), lookups=current.lookups)
        mapper = build_mapper(engine, settings, conn, data_source, stored=stored)
        sample = raw_sample(engine, connection, data_source, limit)
        if not sample:
            typer.echo("no stored records: run a full import first (with INLET_KEEP_RAW on, the default)")
        for external_id, raw in sample:
            typer.echo(f"--- {external_id}\nraw:    {raw}")
            try:
                typer.echo(f"mapped: {orjson.dumps(mapper.map(orjson.loads(raw))).decode()}")
            except RecordError as exc:
                typer.echo(f"error:  {exc}")


@mappings_app.command("schema")
def mappings_schema(
    tenant: Tenant,
    data_source: DataSource = "users",
    refresh: Annotated[bool, typer.Option(help="fetch it from the app now, whatever the cache holds")] = False,
) -> None:
    """The app schema the tenant's mappings and records are checked against."""
    from inlet.mapping import schema_for

    with _errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        _check_tenant(engine, tenant)
        schema = schema_for(engine, settings, tenant, data_source, refresh=refresh)
        if schema is None:
            typer.echo(f"no app schema for {data_source} (INLET_APP_SCHEMA__SOURCE=static and no file)")
            return
        typer.echo(f"# {schema.origin}")
        typer.echo(orjson.dumps(schema.document, option=orjson.OPT_INDENT_2).decode())


@quarantine_app.command("list")
def quarantine_list(
    tenant: Tenant, connection: MaybeConnection = None, limit: Annotated[int, typer.Option(min=1)] = 100
) -> None:
    """Quarantined records of the tenant: id, connection, external id, run and error."""
    from inlet.store import quarantined

    with _errors():
        engine = open_store(get_settings().store_url)
        for row in quarantined(engine, _connection_ids(engine, tenant, connection), limit=limit):
            when = row.created_at.isoformat(timespec="seconds")
            typer.echo(f"{row.id}\t{row.connection_id}\t{row.external_id}\t{when}\trun {row.run_id}\t{row.error}")


@quarantine_app.command("show")
def quarantine_show(tenant: Tenant, record_id: Annotated[int, typer.Argument(help="quarantine id")]) -> None:
    """One quarantined record with its raw payload and error."""
    from inlet.store import quarantined

    with _errors():
        engine = open_store(get_settings().store_url)
        rows = quarantined(engine, _connection_ids(engine, tenant, None), ids=[record_id])
        if not rows:
            raise NotFound(f"tenant {tenant!r} has no quarantined record {record_id}")
        row = rows[0]
        typer.echo(f"id:          {row.id}\nconnection:  {row.connection_id}\ndata source: {row.data_source}")
        typer.echo(f"external id: {row.external_id}\nrun:         {row.run_id}\nat:          {row.created_at}")
        typer.echo(f"error:       {row.error}\nraw:")
        typer.echo(orjson.dumps(orjson.loads(row.raw), option=orjson.OPT_INDENT_2).decode())


@quarantine_app.command("retry")
def quarantine_retry(
    tenant: Tenant,
    connection: Connection,
    ids: Annotated[list[int], typer.Option("--id", help="only these quarantine ids; repeatable")] = [],  # noqa: B006
    data_source: DataSource = "users",
) -> None:
    """Map quarantined records again with the current mapping; those that pass are delivered."""
    with _errors():
        settings = get_settings()
        _tenant_connection(settings, tenant, connection)
        _print(run_flow(settings, "retry-quarantine", tenant, connection, data_source, ids))


def remap_command(tenant: Tenant, connection: Connection, data_source: DataSource = "users") -> None:
    """Re-render every stored record with the current mapping and deliver the changed ones (no source calls)."""
    with _errors():
        settings = get_settings()
        _tenant_connection(settings, tenant, connection)
        _print(run_flow(settings, "remap", tenant, connection, data_source))


def _check_tenant(engine: Any, tenant: str) -> None:
    from sqlmodel import Session

    from inlet.store import Tenant as TenantRow

    with Session(engine) as session:
        if session.get(TenantRow, tenant) is None:
            raise NotFound(f"no tenant {tenant!r}; `inlet tenants list` shows the tenants")


def _connection_ids(engine: Any, tenant: str, connection: str | None) -> list[str]:
    from inlet.store import list_connections

    _check_tenant(engine, tenant)
    ids = [c.id for c in list_connections(engine, tenant)]
    if connection is not None:
        if connection not in ids:
            raise NotFound(f"tenant {tenant!r} has no connection {connection!r}")
        return [connection]
    return ids


def _where(tenant: str, connection: str | None) -> str:
    return f"connection {connection} of tenant {tenant}" if connection else f"tenant {tenant}"
