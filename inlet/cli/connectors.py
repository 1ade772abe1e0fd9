"""`inlet connectors ...`: what each connector supports, checks against live endpoints, simulators, pulls."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inlet.cli.common import credential_value, known_errors, lazy, pairs
from inlet.cli.output import print_table

if TYPE_CHECKING:
    from inlet import service
else:
    service = lazy("inlet.service")

__all__ = ["connectors_app"]

connectors_app = typer.Typer(no_args_is_help=True, help="The external apps inlet can import from.")
Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


@connectors_app.command("list")
def connectors_list() -> None:
    """Each connector and what it supports."""
    with known_errors():
        rows = [(info.name, info.title, " ".join(info.supports)) for info in service.connector_catalogue()]
        print_table(("connector", "app", "supports"), rows)


@connectors_app.command("check")
def connectors_check(
    name: Annotated[str, typer.Argument(help="connector, e.g. hubspot")],
    base_url: Annotated[str, typer.Option(help="the API root to check, e.g. a sandbox account's")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="name=value, repeatable")] = [],  # noqa: B006
    credential: Annotated[
        list[str], typer.Option("--credential", help="name=value, name=env:VAR or name=@file; repeatable")
    ] = [],  # noqa: B006
    make_changes: Annotated[
        bool,
        typer.Option(
            "--make-changes",
            help="a simulator at --base-url: create, update and delete a record through its /_sim/mutate and "
            "check that the changes show each",
        ),
    ] = False,
) -> None:
    """Run the connector contract's checks against an endpoint (read-only unless --make-changes)."""
    import asyncio

    import httpx

    from connectors.check import SimulatorWriter, run_checks
    from connectors.registry import load, open_connector
    from inlet.settings import get_settings

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
            async with connector, httpx.AsyncClient(timeout=30) as control:
                writer = SimulatorWriter(control, base_url) if make_changes else None
                return await run_checks(connector, spec.collection_for("users"), writer)

        results = asyncio.run(check())
        rows = [("ok" if r.ok else "FAIL", r.name, f"{r.seconds:.2f} s", r.detail) for r in results]
        print_table(("result", "check", "took", "detail"), rows)
        if not all(result.ok for result in results):
            raise typer.Exit(1)


@connectors_app.command("schema")
def connectors_schema(
    out: Annotated[Path, typer.Option(help="folder to write connector.schema.json and connector-yaml.md to")] = Path(
        "docs"
    ),
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 when a file is stale")] = False,
) -> None:
    """Write the connector.yaml reference (JSON Schema and Markdown page) generated from the spec."""
    from connectors.reference import stale, write

    if check:
        for path in stale(out):
            typer.echo(f"stale: {path} (run: inlet connectors schema --out {out})")
        raise typer.Exit(1 if stale(out) else 0)
    for path in write(out):
        typer.echo(f"wrote {path}")


@connectors_app.command("simulate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def connectors_simulate(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="connector with a simulator, e.g. salesforce")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8420,
    records: Annotated[int, typer.Option(help="seeded records")] = 1000,
    token: Annotated[str, typer.Option(help="the token the simulator accepts")] = "sim-token",
    list_knobs: Annotated[bool, typer.Option("--knobs", help="list the simulator's knobs and exit")] = False,
) -> None:
    """Serve a connector's simulator on 127.0.0.1 (for `connectors check` and local trials).

    Every other option goes to the simulator: its knobs (e.g. `--search-per-second 5`), `--seed`,
    `--token-lifetime` and `--deliver-every`; `--knobs` lists the knobs with their defaults.
    """
    from connectors.registry import simulator_module
    from connectors.simulation import knobs

    with known_errors():
        module = simulator_module(name)
        if list_knobs:
            for knob in knobs(module.make_simulator):
                typer.echo(f"{knob.flag:28} {knob.kind.__name__:6} default {knob.default!r}")
            return
        module.main(["--port", str(port), "--records", str(records), "--token", token, *context.args])


@connectors_app.command("changes")
def connectors_changes(
    tenant: Tenant,
    connection: ConnectionId,
    since: Annotated[str | None, typer.Option(help="the token a previous pull printed; none: from the start")] = None,
    limit: Annotated[int, typer.Option(help="changes to print")] = 20,
) -> None:
    """Pull what changed in a connection since a token, and print it with the next token."""
    import asyncio

    from connectors.incremental import pull_changes
    from connectors.registry import load, open_connector
    from inlet.oauth import oauth_auth
    from inlet.settings import get_settings
    from inlet.store import Vault, load_connection, open_store

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
                return await pull_changes(connector, collection, since)

        result = asyncio.run(pull())
        kinds = Counter(change.kind for change in result.changes)
        resynced = "; the token had expired: full resync" if result.resynced else ""
        typer.echo(f"{len(result.changes)} changes ({dict(kinds)}){resynced}")
        for change in result.changes[:limit]:
            typer.echo(f"  {change.kind:8} {change.external_id}  {change.updated_at or ''}")
        typer.echo(f"next token: {result.since}")
