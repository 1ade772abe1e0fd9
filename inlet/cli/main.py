"""The `inlet` command: set up the store, add tenants and connections, run imports, start the stack."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from connectors import install_log_redaction
from inlet import service
from inlet.cli.access import api_keys_app, sessions_app
from inlet.cli.common import installation
from inlet.cli.common import known_errors as _errors
from inlet.cli.connections import connections_app, tenants_app
from inlet.cli.connectors import connectors_app
from inlet.cli.deliveries import deliveries_app
from inlet.cli.deliveries import status as deliveries_status
from inlet.cli.imports import imports_app
from inlet.cli.inbox import inbox_app
from inlet.cli.mappings import mappings_app, quarantine_app, remap_command
from inlet.cli.oauth import oauth_app
from inlet.cli.push import push_app
from inlet.cli.push import status as push_status
from inlet.errors import InletError
from inlet.local import serve_receiver
from inlet.service import OWNER_ONLY_UMASK, secure_home
from inlet.settings import get_settings

# No locals in tracebacks: a local variable may hold a credential (Typer shows them by default).
app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)
# Every command group is a Typer of its own module, attached here; root commands are defined below.
for group, name in (
    (tenants_app, "tenants"),
    (connectors_app, "connectors"),
    (connections_app, "connections"),
    (imports_app, "import"),
    (mappings_app, "mappings"),
    (quarantine_app, "quarantine"),
    (inbox_app, "inbox"),
    (deliveries_app, "deliveries"),
    (push_app, "push"),
    (oauth_app, "oauth"),
    (api_keys_app, "api-keys"),
    (sessions_app, "connect-sessions"),
):
    app.add_typer(group, name=name)
app.command("remap")(remap_command)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


def main() -> None:
    """Every file and folder this command (and what it starts) creates is its owner's alone (0600/0700)."""
    os.umask(OWNER_ONLY_UMASK)
    install_log_redaction()
    try:
        settings = get_settings()
    except ValueError:  # invalid INLET_* settings: the command that reads them says which
        settings = None
    if settings is not None:
        secure_home(settings)
    app()


@app.command()
def init() -> None:
    """Create the state folder, the credentials key, the signing secret and the store."""
    with _errors():
        for line in service.initialise(get_settings()):
            typer.echo(line)


@app.command()
def deliver(tenant: Tenant, connection: ConnectionId) -> None:
    """Send what waits in a connection's outbox (after the app was down)."""

    with _errors():
        result = service.run_here(installation(), "deliver-outbox", tenant, connection)
        typer.echo(f"delivered {result.delivered} events in {result.batches} batches; dead letters: {result.dead}")


@app.command()
def status() -> None:
    """Per connection: imports, last poll and incremental run, inbox lag, outbox, quarantine, last error."""
    with _errors():
        inst = installation()
        report = service.status_report(inst)
        if not report.history:
            typer.echo("(no Prefect server answers: run history left out; start one with `inlet up`)")
        for row in report.connections:
            typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))
        typer.echo("continuity:")
        for row in service.sync_status(inst.engine):
            typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))
    deliveries_status()
    push_status()


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
    """Serve webhooks (POST /webhooks/{app}/...), the API for your backend (/api) and your tenants' pages (/pages)."""
    from inlet.api import create_server

    with _errors():
        inst = installation()
        serve_receiver(
            inst.settings, host, port or inst.settings.receiver_port, lambda notify: create_server(inst, notify)
        )


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
