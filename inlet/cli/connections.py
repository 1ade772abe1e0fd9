"""`inlet tenants ...` and `inlet connections ...`: customers of your app and their accounts in external apps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from inlet.cli.common import credential_value as _credential
from inlet.cli.common import installation, lazy
from inlet.cli.common import known_errors as _errors
from inlet.cli.common import pairs as _pairs
from inlet.cli.output import DEFAULT_LIMIT, print_page

if TYPE_CHECKING:
    from inlet import service
else:
    service = lazy("inlet.service")

__all__ = ["connections_app", "tenants_app"]

tenants_app = typer.Typer(no_args_is_help=True, help="Customers of your app.")
connections_app = typer.Typer(no_args_is_help=True, help="A tenant's accounts in external apps.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
AppName = Annotated[str, typer.Option("--app", help="connector name, e.g. hubspot")]
Params = Annotated[list[str], typer.Option("--param", "-p", help="name=value, repeatable")]
Limit = Annotated[int, typer.Option(min=1, max=500, help="rows per page")]
Cursor = Annotated[str | None, typer.Option(help="the page after this cursor (the footer prints it)")]


@tenants_app.command("add")
def tenants_add(tenant_id: str, name: Annotated[str | None, typer.Option(help="display name")] = None) -> None:
    """Add a tenant."""
    with _errors():
        service.create_tenant(installation(), tenant_id, name)
        typer.echo(f"tenant {tenant_id} added")


@tenants_app.command("list")
def tenants_list(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> None:
    """List the tenants, a page at a time."""
    with _errors():
        page = service.list_tenants(installation(), cursor=cursor, limit=limit)
        rows = [(t.id, t.name) for t in page.items]
        command = f"inlet tenants list --limit {limit}"
        print_page(("tenant", "name"), rows, page.next_cursor, command, empty="no tenants yet")


@connections_app.command("add")
def connections_add(
    tenant: Tenant,
    connection_id: Annotated[str, typer.Option("--id", help="connection id, e.g. demo-hubspot")],
    app_name: Annotated[str, typer.Option("--app", help="connector name, e.g. hubspot")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="name=value, repeatable")] = [],  # noqa: B006
    credential: Annotated[
        list[str], typer.Option("--credential", help="name=value, name=env:VAR or name=@file; repeatable")
    ] = [],  # noqa: B006
    replace: Annotated[bool, typer.Option(help="replace an existing connection of this tenant")] = False,
    check: Annotated[
        bool, typer.Option(help="read the app's first page with the credentials before saving (--no-check: don't)")
    ] = True,
) -> None:
    """Connect a tenant's account in an external app; the credentials are checked, then stored encrypted."""
    with _errors():
        credentials = {name: _credential(value) for name, value in _pairs(credential, "credential").items()}
        service.create_connection(
            installation(),
            tenant_id=tenant,
            connection_id=connection_id,
            app=app_name,
            parameters=_pairs(param, "param"),
            credentials=credentials,
            replace=replace,
            check=check,
        )
        typer.echo(f"connection {connection_id} ({app_name}) added to tenant {tenant}")


@connections_app.command("update")
def connections_update(
    tenant: Tenant,
    connection_id: Annotated[str, typer.Option("--connection", "-c", "--id", help="connection id")],
    param: Params = [],  # noqa: B006  (typer reads the default; it is never mutated)
    credential: Annotated[
        list[str], typer.Option("--credential", help="name=value, name=env:VAR or name=@file; repeatable")
    ] = [],  # noqa: B006
    check: Annotated[
        bool, typer.Option(help="read the app's first page with the new settings before saving (--no-check: don't)")
    ] = True,
) -> None:
    """Change some parameters or credentials of a connection; the others stay as they are."""
    with _errors():
        credentials = {name: _credential(value) for name, value in _pairs(credential, "credential").items()}
        view = service.update_connection(
            installation(),
            tenant,
            connection_id,
            parameters=_pairs(param, "param"),
            credentials=credentials,
            check=check,
        )
        changed = sorted({*_pairs(param, "param"), *credentials})
        typer.echo(f"connection {view.id} ({view.app}) of tenant {tenant} updated: {', '.join(changed)}")


@connections_app.command("list")
def connections_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> None:
    """List connections (of one tenant a page at a time, or of all tenants); credentials are never shown."""
    from inlet.cli.output import print_slice

    headers = ("tenant", "connection", "app", "data source", "parameters", "credentials")
    empty = (
        "no connections yet: `inlet connections add --tenant TENANT --id ID --app APP --credential NAME=VALUE`"
        " or `inlet connections connect --tenant TENANT --app APP`"
    )
    if cursor is not None and tenant is None:
        raise typer.BadParameter("--cursor pages one tenant's connections: give --tenant too")
    with _errors():
        inst = installation()
        if tenant is not None:
            page = service.list_connections(inst, tenant, cursor=cursor, limit=limit)
            command = f"inlet connections list --tenant {tenant} --limit {limit}"
            print_page(headers, [_connection_row(c) for c in page.items], page.next_cursor, command, empty=empty)
            return
        tenants = service.all_items(lambda c: service.list_tenants(inst, cursor=c))
        rows = [_connection_row(c) for t in tenants for c in _connections_of(inst, t.id)]
        print_slice(headers, rows, limit, "inlet connections list", empty=empty)


def _connection_row(c: service.ConnectionView) -> tuple[object, ...]:
    return (c.tenant, c.id, c.app, c.data_source, c.parameters, "***")


@connections_app.command("connect")
def connect(
    tenant: Tenant,
    app_name: AppName,
    connection_id: Annotated[str | None, typer.Option("--id", help="connection id; default <tenant>-<app>")] = None,
    param: Params = [],  # noqa: B006  (typer reads the default; it is never mutated)
    grant: Annotated[
        Literal["authorization_code", "client_credentials"], typer.Option(help="client_credentials: app-only (Graph)")
    ] = "authorization_code",
) -> None:
    """Connect a tenant's account with OAuth: print the consent URL (or, app-only, fetch the token now)."""
    with _errors():
        inst = installation()
        target = connection_id or f"{tenant}-{app_name}"
        parameters = _pairs(param, "param")
        if grant == "client_credentials":
            service.connect_app_only(inst, tenant_id=tenant, app=app_name, connection_id=target, parameters=parameters)
            typer.echo(f"connection {target} ({app_name}, app-only) connected for tenant {tenant}")
            return
        url = service.start_oauth(inst, tenant_id=tenant, app=app_name, connection_id=target, parameters=parameters)
        link = service.oauth_link(inst, tenant_id=tenant, app=app_name, connection_id=target)
        days = inst.settings.oauth_link_ttl_seconds / 86_400
        typer.echo(f"Send the tenant this link (served by `inlet serve`, valid {days:.0f} days):\n  {link}")
        minutes = inst.settings.oauth_state_ttl_seconds / 60
        typer.echo(f"or open this consent URL directly (valid {minutes:.0f} min, once):")
        typer.echo(url)


@connections_app.command("show")
def show(
    tenant: Tenant,
    connection_id: Annotated[str, typer.Option("--connection", "-c", "--id", help="connection id")],
) -> None:
    """One connection: parameters, credential names and OAuth state; every secret masked."""
    with _errors():
        inst = installation()
        c = service.describe_connection(inst, tenant, connection_id)
        typer.echo(f"connection: {c.id}\ntenant: {c.tenant}\napp: {c.app}\ndata_source: {c.data_source}")
        typer.echo(f"parameters: {c.parameters}")
        typer.echo("credentials: " + (", ".join(f"{name}=***" for name in c.credential_names) or "-"))
        row = service.oauth_tokens(inst, tenant, connection_id)
        if row is None:
            typer.echo("oauth: -")
            return
        expires = row.tokens.expires_at
        when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds") if expires else "not said"
        typer.echo(f"oauth: {row.grant}, {row.status}" + (f" ({row.status_reason})" if row.status_reason else ""))
        typer.echo(f"access_token=*** expires {when}; refresh_token={'***' if row.tokens.refresh_token else '-'}")
        typer.echo(f"refreshes: {row.refreshes}; token version {row.version}")


def _connections_of(inst: service.Installation, tenant_id: str) -> Iterator[service.ConnectionView]:
    return service.all_items(lambda cursor: service.list_connections(inst, tenant_id, cursor=cursor))


ConnectionOption = Annotated[str, typer.Option("--connection", "-c", "--id", help="connection id")]


@connections_app.command("policy")
def policy(
    tenant: Tenant,
    connection_id: ConnectionOption,
    poll_interval: Annotated[int | None, typer.Option(help="seconds between polls (default 300)")] = None,
    reconcile_every: Annotated[int | None, typer.Option(help="seconds between reconciliations (default 86400)")] = None,
    webhooks: Annotated[bool | None, typer.Option("--webhooks/--no-webhooks", help="webhooks feed it")] = None,
) -> None:
    """Show or change a connection's sync policy."""
    from inlet.service import set_policy

    with _errors():
        row = set_policy(
            installation(),
            tenant,
            connection_id,
            poll_seconds=poll_interval,
            reconcile_seconds=reconcile_every,
            webhooks=webhooks,
        )
        typer.echo(
            f"{row.connection_id}: {row.state}, poll every {row.poll_seconds}s, reconcile every "
            f"{row.reconcile_seconds}s, webhooks {'on' if row.webhooks else 'off'}"
        )


@connections_app.command("pause")
def pause(tenant: Tenant, connection_id: ConnectionOption) -> None:
    """Stop polling and reconciling a connection (until `resume`)."""
    from inlet.service import pause as pause_connection

    with _errors():
        pause_connection(installation(), tenant, connection_id)
        typer.echo(f"connection {connection_id} paused")


@connections_app.command("resume")
def resume(tenant: Tenant, connection_id: ConnectionOption) -> None:
    """Poll and reconcile a paused connection again."""
    from inlet.service import resume as resume_connection

    with _errors():
        resume_connection(installation(), tenant, connection_id)
        typer.echo(f"connection {connection_id} active")


@connections_app.command("reconcile")
def reconcile(tenant: Tenant, connection_id: ConnectionOption) -> None:
    """Reconcile a connection at the scheduler's next tick (a full sync that repairs and reports drift)."""
    from inlet.service import request_reconciliation

    with _errors():
        request_reconciliation(installation(), tenant, connection_id)
        typer.echo(f"connection {connection_id}: reconciliation due at the scheduler's next tick")


@connections_app.command("remove")
def remove(tenant: Tenant, connection_id: ConnectionOption) -> None:
    """Stop a connection, delete its webhook subscription at the app, and delete it with everything inlet keeps for
    it (its records stay in your app)."""
    from inlet.service import delete_connection

    with _errors():
        delete_connection(installation(), tenant, connection_id)
        typer.echo(f"connection {connection_id} removed")
