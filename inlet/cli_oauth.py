"""`inlet oauth clients ...` and `inlet connections connect|show`: OAuth clients, the connect flow, masked views."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

import typer

from inlet.cli_common import credential_value, known_errors, pairs
from inlet.settings import get_settings
from inlet.store import open_store

__all__ = ["oauth_app", "register_connection_commands"]

oauth_app = typer.Typer(no_args_is_help=True, help="Your OAuth apps at the external apps (client id and secret).")
clients = typer.Typer(no_args_is_help=True, help="OAuth clients, one per external app.")
oauth_app.add_typer(clients, name="clients")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
AppName = Annotated[str, typer.Option("--app", help="connector name, e.g. hubspot")]
Params = Annotated[list[str], typer.Option("--param", "-p", help="name=value, repeatable")]


@clients.command("add")
def clients_add(
    app_name: AppName,
    client_id: Annotated[str, typer.Option(help="the client (application) id")],
    client_secret: Annotated[str, typer.Option(help="the secret, env:VAR or @file (kept out of shell history)")],
) -> None:
    """Register (or replace) your OAuth client for an app; the secret is stored encrypted."""
    from inlet.oauth import register_client
    from inlet.vault import Vault

    with known_errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        register_client(engine, Vault.from_settings(settings), app_name, client_id, credential_value(client_secret))
        typer.echo(f"OAuth client for {app_name} stored (client id {client_id}, secret ***)")


@clients.command("list")
def clients_list() -> None:
    """The registered OAuth clients; secrets are never shown."""
    from sqlmodel import Session, select

    from inlet.store import OAuthClientRow

    with known_errors(), Session(open_store(get_settings().store_url)) as session:
        for row in session.exec(select(OAuthClientRow).order_by(OAuthClientRow.app)):
            typer.echo(f"{row.app}\tclient_id={row.client_id}\tclient_secret=***")


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
    from inlet.oauth import connect_app_only, connect_link, start_connect
    from inlet.oauth_clients import token_client
    from inlet.vault import Vault

    with known_errors():
        settings = get_settings()
        engine, vault = open_store(settings.store_url), Vault.from_settings(settings)
        target = connection_id or f"{tenant}-{app_name}"
        parameters = pairs(param, "param")
        if grant == "client_credentials":

            async def fetch() -> None:
                async with token_client(settings) as http:
                    await connect_app_only(
                        engine,
                        vault,
                        settings,
                        tenant_id=tenant,
                        app=app_name,
                        connection_id=target,
                        parameters=parameters,
                        http=http,
                    )

            asyncio.run(fetch())
            typer.echo(f"connection {target} ({app_name}, app-only) connected for tenant {tenant}")
            return
        url = start_connect(
            engine, vault, settings, tenant_id=tenant, app=app_name, connection_id=target, parameters=parameters
        )
        link = connect_link(vault, settings, tenant_id=tenant, app=app_name, connection_id=target)
        days = settings.oauth_link_ttl_seconds / 86_400
        typer.echo(f"Send the tenant this link (served by `inlet serve`, valid {days:.0f} days):\n  {link}")
        minutes = settings.oauth_state_ttl_seconds / 60
        typer.echo(f"or open this consent URL directly (valid {minutes:.0f} min, once):")
        typer.echo(url)


def show(
    tenant: Tenant,
    connection_id: Annotated[str, typer.Option("--connection", "-c", "--id", help="connection id")],
) -> None:
    """One connection: parameters, credential names and OAuth state; every secret masked."""
    from inlet.oauth_tokens import read_tokens
    from inlet.tenancy import load_connection
    from inlet.vault import Vault

    with known_errors():
        settings = get_settings()
        engine, vault = open_store(settings.store_url), Vault.from_settings(settings)
        loaded = load_connection(engine, vault, tenant, connection_id)
        c = loaded.connection
        typer.echo(f"connection: {c.id}\ntenant: {c.tenant_id}\napp: {c.app}\ndata_source: {c.data_source}")
        typer.echo(f"parameters: {c.parameters}")
        typer.echo("credentials: " + (", ".join(f"{name}=***" for name in sorted(loaded.credentials)) or "-"))
        row = read_tokens(engine, vault, c.id)
        if row is None:
            typer.echo("oauth: -")
            return
        expires = row.tokens.expires_at
        when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds") if expires else "not said"
        typer.echo(f"oauth: {row.grant}, {row.status}" + (f" ({row.status_reason})" if row.status_reason else ""))
        typer.echo(f"access_token=*** expires {when}; refresh_token={'***' if row.tokens.refresh_token else '-'}")
        typer.echo(f"refreshes: {row.refreshes}; token version {row.version}")


def register_connection_commands(connections: typer.Typer) -> None:
    """Add `connect` and `show` to `inlet connections`."""
    connections.command("connect")(connect)
    connections.command("show")(show)
