"""The `inlet` command: set up the store, add tenants and connections, run imports, start the stack."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from connectors.errors import ConnectorError, SpecError
from inlet.errors import InletError, NotFound
from inlet.settings import Settings, get_settings
from inlet.store import open_store
from mappings.errors import MappingError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
tenants = typer.Typer(no_args_is_help=True, help="Customers of your app.")
connections = typer.Typer(no_args_is_help=True, help="A tenant's accounts in external apps.")
imports = typer.Typer(no_args_is_help=True, help="Run imports.")
connectors_app = typer.Typer(no_args_is_help=True, help="The external apps inlet can import from.")
app.add_typer(tenants, name="tenants")
app.add_typer(connectors_app, name="connectors")
app.add_typer(connections, name="connections")
app.add_typer(imports, name="import")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


def main() -> None:
    app()


@contextmanager
def _errors() -> Iterator[None]:
    """Known errors become one line on stderr and a non-zero exit code, never a traceback."""
    try:
        yield
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (InletError, SpecError, MappingError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ConnectorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{what} {item!r} is not name=value")
        pairs[name] = value
    return pairs


def _credential(value: str) -> SecretStr:
    """A credential value as given, or read from `env:NAME` or `@file` so it stays out of shell history."""
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise typer.BadParameter(f"environment variable {name} is not set")
        return SecretStr(os.environ[name])
    if value.startswith("@"):
        return SecretStr(Path(value[1:]).read_text().strip())
    return SecretStr(value)


@app.command()
def init() -> None:
    """Create the state folder, the credentials key, the signing secret and the store."""
    with _errors():
        for line in initialise(get_settings()):
            typer.echo(line)


def initialise(settings: Settings) -> list[str]:
    from inlet.signing import generate_secret
    from inlet.vault import ensure_key_file

    settings.home.mkdir(parents=True, exist_ok=True)
    lines = []
    if settings.secret_key is None and ensure_key_file(settings.home / "secret.key"):
        lines.append(f"created the credentials key {settings.home / 'secret.key'}")
    secret_file = settings.home / "destination.secret"
    if settings.destination.secret is None and not secret_file.exists():
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_secret())
        lines.append(f"created the delivery signing secret {secret_file}")
    open_store(settings.store_url)
    lines.append(f"store ready at {settings.store_url}")
    return lines


@tenants.command("add")
def tenants_add(tenant_id: str, name: Annotated[str | None, typer.Option(help="display name")] = None) -> None:
    """Add a tenant."""
    from inlet.tenancy import add_tenant

    with _errors():
        add_tenant(open_store(get_settings().store_url), tenant_id, name)
        typer.echo(f"tenant {tenant_id} added")


@tenants.command("list")
def tenants_list() -> None:
    """List the tenants."""
    from inlet.tenancy import list_tenants

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
    from inlet.tenancy import add_connection
    from inlet.vault import Vault

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
    from inlet.tenancy import list_connections

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
        summary = run_full_import(
            get_settings(), tenant, connection, data_source=data_source, restart=restart, force_delete=force_delete
        )
        _print_summary(summary)


def run_full_import(settings: Settings, tenant: str, connection: str, **options: Any) -> Any:
    """Check the connection exists, then run the full-import flow in this process."""
    from inlet.prefect_env import apply_prefect_env
    from inlet.tenancy import load_connection
    from inlet.vault import Vault

    load_connection(open_store(settings.store_url), Vault.from_settings(settings), tenant, connection)
    apply_prefect_env(settings)
    from flows.full_import import full_import
    from flows.runtime import ImportJob

    try:
        return asyncio.run(full_import(ImportJob(tenant=tenant, connection=connection, **options)))
    finally:
        _flush_prefect()


def _flush_prefect() -> None:
    """Ship buffered run logs and events before this process (or the server it started) goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    EventsWorker.drain_all()


@connectors_app.command("list")
def connectors_list() -> None:
    """Each connector and what it supports."""
    from connectors.registry import available, load

    with _errors():
        for name in available():
            spec, hooks = load(name)
            collection = spec.collections[spec.collection_for("users")]
            supports = [
                "list",
                "get" if collection.get else "",
                "changes" if collection.changes or hooks.changes else "",
            ]
            supports.append("deletions" if (collection.changes and collection.changes.deleted) or hooks.changes else "")
            supports.append("webhooks" if hooks.verify_webhook else "")
            typer.echo(f"{name:14} {spec.title:22} {' '.join(s for s in supports if s)}")


@connectors_app.command("check")
def connectors_check(
    name: Annotated[str, typer.Argument(help="connector, e.g. hubspot")],
    base_url: Annotated[str, typer.Option(help="the API root to check, e.g. a sandbox account's")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="name=value, repeatable")] = [],  # noqa: B006
    credential: Annotated[
        list[str], typer.Option("--credential", help="name=value, name=env:VAR or name=@file; repeatable")
    ] = [],  # noqa: B006
) -> None:
    """Run the connector contract's read-only checks against a live endpoint."""
    from connectors.check import run_checks
    from connectors.registry import load, open_connector

    with _errors():
        spec, _ = load(name)
        credentials = {k: _credential(v) for k, v in _pairs(credential, "credential").items()}
        connector = open_connector(
            name, parameters={"base_url": base_url, **_pairs(param, "param")}, credentials=credentials
        )

        async def check() -> Any:
            async with connector:
                return await run_checks(connector, spec.collection_for("users"))

        results = asyncio.run(check())
        for result in results:
            typer.echo(f"{'ok  ' if result.ok else 'FAIL'} {result.name:12} {result.seconds:6.2f}s  {result.detail}")
        if not all(result.ok for result in results):
            raise typer.Exit(1)


@connectors_app.command("simulate")
def connectors_simulate(
    name: Annotated[str, typer.Argument(help="connector with a simulator, e.g. salesforce")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8420,
    records: Annotated[int, typer.Option(help="seeded records")] = 1000,
    token: Annotated[str, typer.Option(help="the token the simulator accepts")] = "sim-token",
) -> None:
    """Serve a connector's simulator on 127.0.0.1 (for `connectors check` and local trials)."""
    import importlib

    with _errors():
        module = importlib.import_module(f"connectors.{name}.simulator")
        if hasattr(module, "make_simulator"):
            from connectors.simulation import serve

            serve(
                module.make_simulator,
                f"{name} simulator",
                ["--port", str(port), "--records", str(records), "--token", token],
            )
        else:
            module.main(["--port", str(port), "--records", str(records), "--token", token])


@connectors_app.command("changes")
def connectors_changes(
    tenant: Tenant,
    connection: ConnectionId,
    since: Annotated[str | None, typer.Option(help="the token a previous pull printed; none: from the start")] = None,
    limit: Annotated[int, typer.Option(help="changes to print")] = 20,
) -> None:
    """Pull what changed in a connection since a token, and print it with the next token."""
    from connectors.registry import load, open_connector
    from inlet.tenancy import load_connection
    from inlet.vault import Vault

    with _errors():
        settings = get_settings()
        loaded = load_connection(open_store(settings.store_url), Vault.from_settings(settings), tenant, connection)
        spec, _ = load(loaded.connection.app)
        collection = loaded.connection.collection or spec.collection_for(loaded.connection.data_source)

        async def pull() -> Any:
            async with open_connector(
                loaded.connection.app, parameters=loaded.connection.parameters, credentials=loaded.credentials
            ) as connector:
                return await connector.pull_changes(collection, since)

        result = asyncio.run(pull())
        kinds = Counter(change.kind for change in result.changes)
        resynced = "; the token had expired: full resync" if result.resynced else ""
        typer.echo(f"{len(result.changes)} changes ({dict(kinds)}){resynced}")
        for change in result.changes[:limit]:
            typer.echo(f"  {change.kind:8} {change.external_id}  {change.updated_at or ''}")
        typer.echo(f"next token: {result.since}")


@app.command()
def deliver(tenant: Tenant, connection: ConnectionId) -> None:
    """Send what waits in a connection's outbox (after the app was down)."""
    from inlet.prefect_env import apply_prefect_env
    from inlet.tenancy import load_connection
    from inlet.vault import Vault

    with _errors():
        settings = get_settings()
        load_connection(open_store(settings.store_url), Vault.from_settings(settings), tenant, connection)
        apply_prefect_env(settings)
        from flows.deliver_outbox import deliver_outbox

        try:
            result = asyncio.run(deliver_outbox(tenant, connection))
        finally:
            _flush_prefect()
        typer.echo(f"delivered {result.delivered} events in {result.batches} batches; dead letters: {result.dead}")


@app.command()
def status() -> None:
    """Per connection: last full import, ledger size, outbox depth, quarantined records."""
    from inlet.status import connection_status

    with _errors():
        for row in connection_status(open_store(get_settings().store_url)):
            typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))


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


@app.command("demo-app")
def demo_app(port: Annotated[int | None, typer.Option(help="port on 127.0.0.1")] = None) -> None:
    """Run the demo receiving app in the foreground."""
    from inlet import demo_app as module

    with _errors():
        settings = get_settings()
        secret = settings.destination_secret()
        if secret is None:
            raise InletError("no signing secret: run `inlet init` first")
        os.environ.setdefault("INLET_DEMO_APP_SECRET", secret.get_secret_value())
        module.main(["--port", str(port or settings.demo_app_port), "--db", str(settings.home / "demo-app.db")])


def _print_summary(summary: Any) -> None:
    for name, value in summary.model_dump().items():
        typer.echo(f"  {name:>16}: {value}")


if __name__ == "__main__":
    main()
