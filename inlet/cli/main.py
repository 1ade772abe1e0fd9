"""The `inlet` command: set up the store, add tenants and connections, run imports, start the stack."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from inlet.cli.access import api_keys_app, sessions_app
from inlet.cli.common import fail, installation, lazy, set_debug
from inlet.cli.common import known_errors as _errors
from inlet.cli.connections import connections_app, tenants_app
from inlet.cli.connectors import connectors_app
from inlet.cli.deliveries import deliveries_app
from inlet.cli.deliveries import status as deliveries_status
from inlet.cli.imports import imports_app
from inlet.cli.inbox import inbox_app
from inlet.cli.mappings import mappings_app, quarantine_app, remap_command
from inlet.cli.oauth import oauth_app
from inlet.cli.output import print_record
from inlet.cli.push import push_app
from inlet.cli.push import status as push_status
from inlet.errors import InletError

if TYPE_CHECKING:
    from inlet import service
else:
    service = lazy("inlet.service")

START, SETUP, RUN, FIX, ACCESS = "Start here", "Set up", "Run", "Inspect and fix", "Access"


class InletGroup(TyperGroup):
    """The root group: whatever a command lets escape is one line on stderr (a traceback only under --debug)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("typer"):
                raise
            raise fail(exc) from None

    def list_commands(self, ctx: Any) -> list[str]:
        return _ordered(super().list_commands(ctx))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands under their panel headings, in ORDER; plain text, so `inlet --help` loads no rich."""
        panels: dict[str, list[tuple[str, str]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                panel = getattr(command, "rich_help_panel", None) or RUN
                panels.setdefault(panel, []).append((name, command.get_short_help_str(200)))
        for panel, rows in panels.items():
            with formatter.section(panel):
                formatter.write_dl(rows)


# No locals in tracebacks: a local variable may hold a credential (Typer shows them by default).
app = typer.Typer(
    cls=InletGroup,
    no_args_is_help=True,
    add_completion=False,
    help=__doc__,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # the root's help in plain text: `inlet --help` answers without importing rich
)
# Every command group is a Typer of its own module, attached here in the order an operator meets them;
# root commands are defined below, each in its panel.
for group, name, panel in (
    (tenants_app, "tenants", SETUP),
    (connectors_app, "connectors", SETUP),
    (connections_app, "connections", SETUP),
    (mappings_app, "mappings", SETUP),
    (imports_app, "import", RUN),
    (push_app, "push", RUN),
    (quarantine_app, "quarantine", FIX),
    (deliveries_app, "deliveries", FIX),
    (inbox_app, "inbox", FIX),
    (oauth_app, "oauth", ACCESS),
    (api_keys_app, "api-keys", ACCESS),
    (sessions_app, "connect-sessions", ACCESS),
):
    app.add_typer(group, name=name, rich_help_panel=panel)
app.command("remap", rich_help_panel=RUN)(remap_command)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


def main() -> None:
    """The `inlet` command."""
    app()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="tracebacks of failures, and Prefect's run logs")] = False,
) -> None:
    """Continuous import from your tenants' apps into yours. Every file and folder a command (and what it starts)
    creates is its owner's alone (0600/0700)."""
    set_debug(debug)
    if debug:
        os.environ["INLET_DEBUG"] = "1"
    from connectors import install_log_redaction
    from inlet.service import OWNER_ONLY_UMASK, secure_home
    from inlet.settings import get_settings

    os.umask(OWNER_ONLY_UMASK)
    install_log_redaction()
    try:
        settings = get_settings()
    except ValueError:  # invalid INLET_* settings: the command that reads them says which
        settings = None
    if settings is not None:
        secure_home(settings)


@app.command(rich_help_panel=START)
def init() -> None:
    """Create the state folder, the credentials key, the signing secret and the store."""
    from inlet.settings import get_settings

    with _errors():
        for line in service.initialise(get_settings()):
            typer.echo(line)


@app.command(rich_help_panel=START)
def up(records: Annotated[int, typer.Option(help="users in the demo HubSpot")] = 5000) -> None:
    """Start the Prefect server, the flow server, the demo source and the demo app; stop them on Ctrl-C."""
    from inlet.demo import run_up
    from inlet.settings import get_settings

    with _errors():
        run_up(get_settings(), records=records)


@app.command(rich_help_panel=START)
def demo(
    records: Annotated[int, typer.Option(help="users in the demo HubSpot")] = 5000,
    wait: Annotated[bool | None, typer.Option(help="keep the stack up until Ctrl-C (default: on a terminal)")] = None,
) -> None:
    """The whole thing on this machine: a demo HubSpot, a full import into a demo app, the run in the UI."""
    from inlet.cli.imports import quiet_prefect_console
    from inlet.demo import run_demo
    from inlet.settings import get_settings

    quiet_prefect_console()
    with _errors():
        interactive = sys.stdin.isatty() and not os.environ.get("CI")
        raise typer.Exit(run_demo(get_settings(), records=records, wait=interactive if wait is None else wait))


@app.command(rich_help_panel=START)
def status(tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="only this tenant")] = None) -> None:
    """Per connection: imports, last poll and incremental run, inbox lag, outbox, quarantine, last error."""
    with _errors():
        inst = installation()
        report = service.status_report(inst, tenant)
        continuity = {row["connection"]: row for row in service.sync_status(inst, tenant)}
        if not report.connections:
            typer.echo(
                "no connections yet: `inlet connections add --tenant TENANT --id ID --app APP --credential NAME=VALUE`"
                " (or `inlet up` for the demo)"
            )
        for row in report.connections:
            figures = {k: v for k, v in row.items() if k not in ("tenant", "connection", "app")}
            extra = continuity.get(row["connection"], {})
            figures |= {k: v for k, v in extra.items() if k not in figures and k not in ("tenant", "connection", "app")}
            print_record(figures, title=f"{row['tenant']} / {row['connection']} ({row['app']})")
            typer.echo("")
        if not report.history:
            typer.echo("run history left out: no Prefect server answers; start one with `inlet up` (or `make up`)")
    deliveries_status()
    push_status(tenant)


@app.command(rich_help_panel=RUN)
def deliver(tenant: Tenant, connection: ConnectionId) -> None:
    """Send what waits in a connection's outbox (after the app was down)."""

    with _errors():
        result = service.run_here(installation(), "deliver-outbox", tenant, connection)
        typer.echo(f"delivered {result.delivered} events in {result.batches} batches; dead letters: {result.dead}")


@app.command(rich_help_panel=RUN)
def serve(
    port: Annotated[int | None, typer.Option(help="port; default INLET_RECEIVER_PORT (8430)")] = None,
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 opens it to the network")] = "127.0.0.1",
) -> None:
    """Serve webhooks (POST /webhooks/{app}/...), the API for your backend (/api) and your tenants' pages (/pages)."""
    from inlet.api import create_server
    from inlet.local import serve_receiver

    with _errors():
        inst = installation()
        serve_receiver(
            inst.settings, host, port or inst.settings.receiver_port, lambda notify: create_server(inst, notify)
        )


@app.command("demo-app", rich_help_panel=RUN)
def demo_app(port: Annotated[int | None, typer.Option(help="port on 127.0.0.1")] = None) -> None:
    """Run the demo receiving app in the foreground."""
    from inlet.demo import app as module
    from inlet.settings import get_settings

    with _errors():
        settings = get_settings()
        secret = settings.destination_secret()
        if secret is None:
            raise InletError("no signing secret: run `inlet init` first")
        os.environ.setdefault("INLET_DEMO_APP_SECRET", secret.get_secret_value())
        module.main(["--port", str(port or settings.demo_app_port), "--db", str(settings.home / "demo-app.db")])


# The order of `inlet --help`: what to run first, then setting up, running, fixing, access.
ORDER = [
    "init", "up", "demo", "status",
    "tenants", "connectors", "connections", "mappings",
    "import", "push", "deliver", "remap", "serve", "demo-app",
    "quarantine", "deliveries", "inbox",
    "oauth", "api-keys", "connect-sessions",
]  # fmt: skip


def _ordered(names: list[str]) -> list[str]:
    return sorted(names, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))


if __name__ == "__main__":
    main()
