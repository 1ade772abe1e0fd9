"""`inlet api-keys ...` (keys your backend calls the API with) and `inlet connect-sessions create` (a page link for
one tenant's browser)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inlet.cli.common import installation, known_errors, lazy, pairs
from inlet.cli.output import DEFAULT_LIMIT, print_page

if TYPE_CHECKING:
    from inlet import service
else:
    service = lazy("inlet.service")

__all__ = ["api_keys_app", "sessions_app"]

api_keys_app = typer.Typer(no_args_is_help=True, help="API keys for your backend (stored hashed, shown once).")
sessions_app = typer.Typer(no_args_is_help=True, help="Connect sessions: short-lived pages for one tenant.")


@api_keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="what the key is for, e.g. backend-prod")],
    scope: Annotated[list[str], typer.Option("--scope", help="read, write or admin; repeatable")],
) -> None:
    """Make a key; it is printed once, and only its hash is kept."""
    with known_errors():
        row, key = service.create_api_key(installation(), name, scope)
        typer.echo(f"API key {row.id} ({row.name}, scopes {', '.join(row.scopes)}); shown once, keep it safe:")
        typer.echo(key)


@api_keys_app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, max=500, help="rows per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, typer.Option(help="the page after this cursor (the footer prints it)")] = None,
) -> None:
    """The keys: id, name, scopes, last use and revocation; never the keys themselves."""
    with known_errors():
        page = service.list_keys(installation(), cursor=cursor, limit=limit)
        rows = [(k.id, k.name, k.scopes, k.last_used_at or "never", k.revoked_at) for k in page.items]
        headers = ("id", "name", "scopes", "last used", "revoked")
        print_page(headers, rows, page.next_cursor, f"inlet api-keys list --limit {limit}", empty="no API keys")


@api_keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="the key's id (`inlet api-keys list`)")]) -> None:
    """Revoke a key: calls with it are refused from now on."""
    with known_errors():
        service.revoke_key(installation(), key_id)
        typer.echo(f"API key {key_id} revoked")


@sessions_app.command("create")
def create_session(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="tenant id")],
    connector: Annotated[list[str], typer.Option("--connector", help="a connector the tenant may connect")],
    param: Annotated[
        list[str], typer.Option("--param", "-p", help="connector.name=value, set for the tenant; repeatable")
    ] = [],  # noqa: B006  (typer reads the default; it is never mutated)
    ttl: Annotated[
        float | None, typer.Option(help="seconds; default and longest INLET_API__SESSION_TTL_SECONDS")
    ] = None,
) -> None:
    """Print the connect page of a new session for one tenant (as the API's POST .../connect-sessions does)."""
    with known_errors():
        presets: dict[str, dict[str, str]] = {}
        for dotted, value in pairs(param, "param").items():
            app, _, name = dotted.partition(".")
            if not name:
                raise typer.BadParameter(f"param {dotted!r} is not connector.name=value")
            presets.setdefault(app, {})[name] = value
        session = service.open_connect_session(
            installation(), service.OPERATOR, tenant, connector, parameters=presets, ttl_seconds=ttl
        )
        typer.echo(
            f"connect session {session.id} for {tenant}, until {session.expires_at.isoformat(timespec='seconds')}:"
        )
        typer.echo(session.url)
