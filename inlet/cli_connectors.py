"""`inlet connectors ...`: what each connector supports, checks against live endpoints, simulators, pulls."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated, Any

import typer

from inlet.cli_common import credential_value, known_errors, pairs
from inlet.settings import get_settings
from inlet.store import open_store

__all__ = ["connectors_app"]

connectors_app = typer.Typer(no_args_is_help=True, help="The external apps inlet can import from.")
Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


@connectors_app.command("list")
def connectors_list() -> None:
    """Each connector and what it supports."""
    from connectors.registry import available, load

    with known_errors():
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
            typer.echo(f"{name:14} {spec.title:34} {' '.join(s for s in supports if s)}")


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

    with known_errors():
        spec, _ = load(name)
        credentials = {k: credential_value(v) for k, v in pairs(credential, "credential").items()}
        connector = open_connector(
            name,
            parameters={"base_url": base_url, **pairs(param, "param")},
            credentials=credentials,
            egress=get_settings().egress.policy(),
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

    with known_errors():
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
    from inlet.oauth import oauth_auth
    from inlet.tenancy import load_connection
    from inlet.vault import Vault

    with known_errors():
        settings = get_settings()
        engine, vault = open_store(settings.store_url), Vault.from_settings(settings)
        loaded = load_connection(engine, vault, tenant, connection)
        auth = oauth_auth(engine, vault, settings, loaded)  # None: the connection's own credentials
        spec, _ = load(loaded.connection.app)
        collection = loaded.connection.collection or spec.collection_for(loaded.connection.data_source)

        async def pull() -> Any:
            async with open_connector(
                loaded.connection.app,
                parameters=loaded.connection.parameters,
                credentials=loaded.credentials,
                auth=auth,
                egress=settings.egress.policy(),
            ) as connector:
                return await connector.pull_changes(collection, since)

        result = asyncio.run(pull())
        kinds = Counter(change.kind for change in result.changes)
        resynced = "; the token had expired: full resync" if result.resynced else ""
        typer.echo(f"{len(result.changes)} changes ({dict(kinds)}){resynced}")
        for change in result.changes[:limit]:
            typer.echo(f"  {change.kind:8} {change.external_id}  {change.updated_at or ''}")
        typer.echo(f"next token: {result.since}")
