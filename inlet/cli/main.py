"""The `inlet` command: set up the store, add tenants and connections, run imports, start the stack."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from inlet.cli.common import credential_value as _credential
from inlet.cli.common import known_errors as _errors
from inlet.cli.common import pairs as _pairs
from inlet.cli.connectors import connectors_app
from inlet.cli.deliveries import deliveries_app
from inlet.cli.deliveries import status as deliveries_status
from inlet.cli.mappings import register as _register_mappings
from inlet.cli.oauth import oauth_app, register_connection_commands
from inlet.errors import InletError
from inlet.local import format_summary, run_flow, serve_receiver
from inlet.service import initialise
from inlet.settings import get_settings
from inlet.store import open_store

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
tenants = typer.Typer(no_args_is_help=True, help="Customers of your app.")
connections = typer.Typer(no_args_is_help=True, help="A tenant's accounts in external apps.")
imports = typer.Typer(no_args_is_help=True, help="Run imports.")
app.add_typer(tenants, name="tenants")
app.add_typer(connectors_app, name="connectors")
app.add_typer(connections, name="connections")
app.add_typer(imports, name="import")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(oauth_app, name="oauth")
register_connection_commands(connections)
_register_mappings(app)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def main() -> None:
    app()


@app.command()
def init() -> None:
    """Create the state folder, the credentials key, the signing secret and the store."""
    with _errors():
        for line in initialise(get_settings()):
            typer.echo(line)


@tenants.command("add")
def tenants_add(tenant_id: str, name: Annotated[str | None, typer.Option(help="display name")] = None) -> None:
    """Add a tenant."""
    from inlet.store import add_tenant

    with _errors():
        add_tenant(open_store(get_settings().store_url), tenant_id, name)
        typer.echo(f"tenant {tenant_id} added")


@tenants.command("list")
def tenants_list() -> None:
    """List the tenants."""
    from inlet.store import list_tenants

    with _errors():
        for tenant in list_tenants(open_store(get_settings().store_url)):
            typer.echo(f"{tenant.id}\t{tenant.name}")


@connections.command("add")
def connections_add(
    tenant: Tenant,
    connection_id: Annotated[str, typer.Option("--id", help="connection id, e.g. acme-hubspot")],
    app_name: Annotated[str, typer.Option("--app", help="connector name, e.g. hubspot")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="name=value, repeatable")] = [],  # noqa: B006
    credential: Annotated[
        list[str], typer.Option("--credential", help="name=value, name=env:VAR or name=@file; repeatable")
    ] = [],  # noqa: B006
    replace: Annotated[bool, typer.Option(help="replace an existing connection of this tenant")] = False,
) -> None:
    """Connect a tenant's account in an external app; credentials are stored encrypted."""
    from inlet.store import Vault, add_connection

    with _errors():
        settings = get_settings()
        credentials = {name: _credential(value) for name, value in _pairs(credential, "credential").items()}
        add_connection(
            open_store(settings.store_url),
            Vault.from_settings(settings),
            tenant_id=tenant,
            connection_id=connection_id,
            app=app_name,
            parameters=_pairs(param, "param"),
            credentials=credentials,
            replace=replace,
        )
        typer.echo(f"connection {connection_id} ({app_name}) added to tenant {tenant}")


@connections.command("list")
def connections_list(tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None) -> None:
    """List connections; credentials are never shown."""
    from inlet.store import list_connections

    with _errors():
        for c in list_connections(open_store(get_settings().store_url), tenant):
            typer.echo(f"{c.tenant_id}\t{c.id}\t{c.app}\t{c.data_source}\t{c.parameters}\tcredentials=***")


@imports.command("full")
def import_full(
    tenant: Tenant,
    connection: ConnectionId,
    data_source: Annotated[str, typer.Option(help="the data model to import")] = "users",
    restart: Annotated[bool, typer.Option(help="ignore an unfinished checkpoint")] = False,
    force_delete: Annotated[bool, typer.Option(help="let the deletion sweep pass its guard")] = False,
) -> None:
    """Run a full import of one connection now (resumes an unfinished one)."""
    with _errors():
        summary = run_flow(
            get_settings(),
            "full-import",
            tenant,
            connection,
            data_source=data_source,
            restart=restart,
            force_delete=force_delete,
        )
        _echo_lines(format_summary(summary))


@imports.command("poll")
def import_poll(tenant: Tenant, connection: ConnectionId) -> None:
    """Poll a connection for changes into its inbox (what the poll-changes schedule runs)."""
    with _errors():
        _echo_lines(format_summary(run_flow(get_settings(), "poll-changes", tenant, connection)))


@imports.command("incremental")
def import_incremental(tenant: Tenant, connection: ConnectionId) -> None:
    """Apply a connection's inbox to your app now (what the inlet.records.changed trigger runs)."""
    with _errors():
        _echo_lines(format_summary(run_flow(get_settings(), "incremental-import", tenant, connection)))


@app.command()
def deliver(tenant: Tenant, connection: ConnectionId) -> None:
    """Send what waits in a connection's outbox (after the app was down)."""
    from inlet.local import run_flow

    with _errors():
        result = run_flow(get_settings(), "deliver-outbox", tenant, connection)
        typer.echo(f"delivered {result.delivered} events in {result.batches} batches; dead letters: {result.dead}")


@app.command()
def status() -> None:
    """Per connection: imports, last poll and incremental run, inbox lag, outbox, quarantine, last error."""
    from inlet.local import apply_prefect_env
    from inlet.service import connection_status, run_history

    with _errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        apply_prefect_env(settings)
        history = None
        if "PREFECT_API_URL" in os.environ:
            history = run_history([row["connection"] for row in connection_status(engine)])
        else:
            typer.echo("(no Prefect server answers: run history left out; start one with `inlet up`)")
        for row in connection_status(engine, history):
            typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))
    deliveries_status()


@app.command()
def demo(
    records: Annotated[int, typer.Option(help="users in the demo HubSpot")] = 5000,
    wait: Annotated[bool | None, typer.Option(help="keep the stack up until Ctrl-C (default: on a terminal)")] = None,
) -> None:
    """The whole thing on this machine: a demo HubSpot, a full import into a demo app, the run in the UI."""
    from inlet.demo import run_demo

    with _errors():
        interactive = sys.stdin.isatty() and not os.environ.get("CI")
        raise typer.Exit(run_demo(get_settings(), records=records, wait=interactive if wait is None else wait))


@app.command()
def up(records: Annotated[int, typer.Option(help="users in the demo HubSpot")] = 5000) -> None:
    """Start the Prefect server, the flow server, the demo source and the demo app; stop them on Ctrl-C."""
    from inlet.demo import run_up

    with _errors():
        run_up(get_settings(), records=records)


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="port; default INLET_RECEIVER_PORT (8430)")] = None,
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 opens it to the network")] = "127.0.0.1",
) -> None:
    """Run the webhook receiver: POST /webhooks/{app}/{tenant}/{connection} (or /webhooks/{app})."""
    with _errors():
        settings = get_settings()
        serve_receiver(settings, host, port or settings.receiver_port)


@app.command("demo-app")
def demo_app(port: Annotated[int | None, typer.Option(help="port on 127.0.0.1")] = None) -> None:
    """Run the demo receiving app in the foreground."""
    from inlet.demo import app as module

    with _errors():
        settings = get_settings()
        secret = settings.destination_secret()
        if secret is None:
            raise InletError("no signing secret: run `inlet init` first")
        os.environ.setdefault("INLET_DEMO_APP_SECRET", secret.get_secret_value())
        module.main(["--port", str(port or settings.demo_app_port), "--db", str(settings.home / "demo-app.db")])


if __name__ == "__main__":
    main()
