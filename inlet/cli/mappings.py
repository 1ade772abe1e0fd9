"""`inlet mappings`, `inlet quarantine` and `inlet remap`: per-tenant mappings, quarantined records, re-mapping."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inlet.cli.common import installation, lazy
from inlet.cli.common import known_errors as _errors
from inlet.cli.common import pairs as _pairs
from inlet.cli.output import DEFAULT_LIMIT, human_time, print_page, print_summary, print_table
from inlet.errors import ConfigError

if TYPE_CHECKING:
    from inlet import service
else:
    service = lazy("inlet.service")

__all__ = ["mappings_app", "quarantine_app", "remap_command"]

mappings_app = typer.Typer(no_args_is_help=True, help="Field mappings per tenant and connection.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Records that failed their mapping or the app schema.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
Connection = Annotated[str, typer.Option("--connection", "-c", help="connection id")]
MaybeConnection = Annotated[
    str | None, typer.Option("--connection", "-c", help="connection id; default: every connection of the tenant")
]
DataSource = Annotated[str, typer.Option(help="the data model")]


def _print(summary: Any, title: str) -> None:
    print_summary(summary, title=title)


@mappings_app.command("show")
def mappings_show(tenant: Tenant, connection: MaybeConnection = None, data_source: DataSource = "users") -> None:
    """The effective mapping, field by field, with the layer each field comes from."""
    with _errors():
        view = service.mapping_view(installation(), tenant, connection, data_source)
        rows = [(f.target, f.expression, service.layer_label(f.origin)[1]) for f in view.fields]
        print_table(("field", "expression", "layer"), rows)
        if view.lookups:
            print_table(("lookup", "entries"), list(view.lookups.items()))


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
    import yaml

    from mappings import layer_from_document

    with _errors():
        inst = installation()
        service.require_tenant(inst, tenant)
        if file is not None:
            layer = layer_from_document(yaml.safe_load(file.read_text()), origin=str(file), data_source=data_source)
            change = service.MappingChange(set_fields=layer.fields, lookups=layer.lookups)
        elif field and (expression is not None or remove):
            change = service.MappingChange(set_fields={field: None if remove else expression})
        else:
            raise typer.BadParameter("give FIELD EXPRESSION, FIELD --remove, or --file layer.yaml")
        service.set_mapping(inst, tenant, connection, change, data_source)
        typer.echo(f"saved the mapping of {_where(tenant, connection)}")
        for warning in service.unresolved_paths(inst, tenant, connection, change, data_source):
            typer.echo(f"warning: {warning}", err=True)


@mappings_app.command("unset")
def mappings_unset(
    tenant: Tenant,
    fields: Annotated[list[str], typer.Argument(help="fields to take from the lower layers again")],
    connection: MaybeConnection = None,
    data_source: DataSource = "users",
) -> None:
    """Forget fields of the tenant's or connection's stored layer (the lower layers apply again)."""
    with _errors():
        change = service.MappingChange(unset_fields=tuple(fields))
        service.set_mapping(installation(), tenant, connection, change, data_source)
        typer.echo(f"unset {', '.join(fields)} in the mapping of {_where(tenant, connection)}")


@mappings_app.command("reset")
def mappings_reset(tenant: Tenant, connection: MaybeConnection = None, data_source: DataSource = "users") -> None:
    """Drop the tenant's or connection's stored layer."""
    with _errors():
        dropped = service.reset_mapping(installation(), tenant, connection, data_source)
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
    import orjson

    with _errors():
        change = service.MappingChange(set_fields=_pairs(set_, "--set"))
        preview = service.preview_mapping(
            installation(), tenant, connection, change, level="connection", data_source=data_source, limit=limit, scan=0
        )
        if preview.mapping_error:
            raise ConfigError(preview.mapping_error)
        if not preview.records:
            typer.echo("no stored records: run a full import first (with INLET_KEEP_RAW on, the default)")
        for record in preview.records:
            typer.echo(f"--- {record.external_id}\nraw:    {orjson.dumps(record.raw).decode()}")
            if record.error is None:
                typer.echo(f"mapped: {orjson.dumps(record.mapped).decode()}")
            else:
                typer.echo(f"error:  {record.error}")
        failed = sum(record.error is not None for record in preview.records)
        if failed:
            typer.echo(
                f"error: {failed} of {len(preview.records)} records fail to map (they would be quarantined)", err=True
            )
            raise typer.Exit(1)


@mappings_app.command("schema")
def mappings_schema(
    tenant: Tenant,
    data_source: DataSource = "users",
    refresh: Annotated[bool, typer.Option(help="fetch it from the app now, whatever the cache holds")] = False,
) -> None:
    """The app schema the tenant's mappings and records are checked against."""
    import orjson

    with _errors():
        schema = service.app_schema(installation(), tenant, data_source, refresh=refresh)
        if schema is None:
            typer.echo(f"no app schema for {data_source} (INLET_APP_SCHEMA__SOURCE=static and no file)")
            return
        typer.echo(f"# {schema.origin}")
        typer.echo(orjson.dumps(schema.document, option=orjson.OPT_INDENT_2).decode())


@quarantine_app.command("list")
def quarantine_list(
    tenant: Tenant,
    connection: MaybeConnection = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="rows per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, typer.Option(help="the page after this cursor (the footer prints it)")] = None,
) -> None:
    """Quarantined records of the tenant, oldest first: id, connection, external id, when, run and error."""
    with _errors():
        page = service.list_quarantine(installation(), tenant, connection, cursor=cursor, limit=limit)
        rows = [(r.id, r.connection_id, r.external_id, r.created_at, r.run_id, r.error) for r in page.items]
        headers = ("id", "connection", "record", "quarantined", "run", "error")
        command = f"inlet quarantine list -t {tenant}" + (f" -c {connection}" if connection else "")
        print_page(headers, rows, page.next_cursor, f"{command} --limit {limit}", empty="nothing quarantined")


@quarantine_app.command("show")
def quarantine_show(tenant: Tenant, record_id: Annotated[int, typer.Argument(help="quarantine id")]) -> None:
    """One quarantined record with its raw payload and error."""
    import orjson

    with _errors():
        row = service.show_quarantined(installation(), tenant, record_id)
        typer.echo(f"id:          {row.id}\nconnection:  {row.connection_id}\ndata source: {row.data_source}")
        typer.echo(f"external id: {row.external_id}\nrun:         {row.run_id}")
        typer.echo(f"at:          {human_time(row.created_at)}")
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
        _print(service.retry_quarantine_here(installation(), tenant, connection, ids, data_source), "retry-quarantine")


def remap_command(tenant: Tenant, connection: Connection, data_source: DataSource = "users") -> None:
    """Re-render every stored record with the current mapping and deliver the changed ones (no source calls)."""
    with _errors():
        _print(service.run_here(installation(), "remap", tenant, connection, data_source), "remap")


def _where(tenant: str, connection: str | None) -> str:
    return f"connection {connection} of tenant {tenant}" if connection else f"tenant {tenant}"
