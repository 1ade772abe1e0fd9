"""`inlet oauth clients ...`: your OAuth apps at the external apps."""

from __future__ import annotations

from typing import Annotated

import typer

from inlet.cli.common import credential_value, known_errors

__all__ = ["oauth_app"]

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
    from inlet.settings import get_settings
    from inlet.store import Vault, open_store

    with known_errors():
        settings = get_settings()
        engine = open_store(settings.store_url)
        register_client(engine, Vault.from_settings(settings), app_name, client_id, credential_value(client_secret))
        typer.echo(f"OAuth client for {app_name} stored (client id {client_id}, secret ***)")


@clients.command("list")
def clients_list() -> None:
    """The registered OAuth clients; secrets are never shown."""
    from sqlmodel import Session, select

    from inlet.cli.output import print_table
    from inlet.settings import get_settings
    from inlet.store import OAuthClientRow, open_store

    with known_errors(), Session(open_store(get_settings().store_url)) as session:
        rows = [(r.app, r.client_id, "***") for r in session.exec(select(OAuthClientRow).order_by(OAuthClientRow.app))]
        if not print_table(("app", "client id", "client secret"), rows):
            typer.echo("no OAuth clients: `inlet oauth clients add --app APP --client-id ID --client-secret env:VAR`")
