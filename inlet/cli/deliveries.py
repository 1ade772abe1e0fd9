"""`inlet deliveries ...`: what waits for the team's app, dead letters and their replay, and destinations."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from inlet.cli.common import credential_value, installation, known_errors, lazy
from inlet.cli.output import DEFAULT_LIMIT, print_page, print_table

if TYPE_CHECKING:
    from pydantic import SecretStr

    from inlet import service
else:
    service = lazy("inlet.service")

__all__ = ["deliveries_app", "parse_age"]

deliveries_app = typer.Typer(no_args_is_help=True, help="Deliveries to your app: status, dead letters, replay.")
destination_app = typer.Typer(no_args_is_help=True, help="Where a tenant's events go, and its signing secrets.")
deliveries_app.add_typer(destination_app, name="destination")

OptionalTenant = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant id (default: every tenant)")]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> timedelta:
    """`90s`, `30m`, `12h`, `7d` as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not an age like 90s, 30m, 12h or 7d")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@deliveries_app.command("status")
def status() -> None:
    """Per destination: pending, parked, dead letters, the oldest pending age and the breaker's state."""
    with known_errors():
        figures = [row.as_row() for row in service.delivery_status(installation())]
        if not figures:
            typer.echo("deliveries: nothing waits, every event was delivered")
            return
        headers = [name.replace("_", " ") for name in figures[0]]
        print_table(headers, [list(row.values()) for row in figures], title="deliveries")


@deliveries_app.command("list")
def list_(
    dead: Annotated[bool, typer.Option("--dead", help="dead letters instead of the events waiting")] = False,
    tenant: OptionalTenant = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="rows per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, typer.Option(help="the page after this cursor (the footer prints it)")] = None,
) -> None:
    """Events waiting for the app (or, with --dead, dead letters), oldest first, with the app's last answer."""
    with known_errors():
        status: Literal["pending", "dead"] = "dead" if dead else "pending"
        page = service.list_deliveries(installation(), status, tenant, cursor=cursor, limit=limit)
        rows = [
            (
                e.id, e.tenant_id, e.connection_id, e.external_id, e.type, e.attempts,
                e.dead_at if dead else e.next_attempt_at, (e.last_error or "")[:120],
            )
            for e in page.items
        ]  # fmt: skip
        when = "died" if dead else "next attempt"
        headers = ("id", "tenant", "connection", "record", "type", "attempts", when, "app's last answer")
        command = "inlet deliveries list" + (" --dead" if dead else "") + (f" -t {tenant}" if tenant else "")
        empty = "no dead letters" if dead else "nothing waits for the app"
        print_page(headers, rows, page.next_cursor, f"{command} --limit {limit}", empty=empty)


@deliveries_app.command("replay")
def replay(
    ids: Annotated[list[int], typer.Option("--id", help="a dead letter's id; repeatable")] = [],  # noqa: B006
    tenant: OptionalTenant = None,
    all_: Annotated[bool, typer.Option("--all", help="every dead letter")] = False,
) -> None:
    """Make dead letters pending again (after the app was fixed); the next drain sends them in order."""
    if not (ids or tenant or all_):
        raise typer.BadParameter("say which dead letters: --id N, --tenant T or --all")
    with known_errors():
        count = service.replay_dead_letters(installation(), ids=ids or None, tenant=tenant)
        typer.echo(
            f"{count} dead letters are pending again; `inlet deliver --tenant TENANT --connection CONNECTION` "
            "or the deliver-outbox schedule sends them"
        )


@deliveries_app.command("purge")
def purge(
    older_than: Annotated[str, typer.Option("--older-than", help="age of the dead letters to delete: 7d, 12h ...")],
) -> None:
    """Delete dead letters that died longer ago than the given age."""
    age = parse_age(older_than)
    with known_errors():
        count = service.purge_dead_letters(installation(), age)
        typer.echo(f"{count} dead letters older than {older_than} deleted")


@destination_app.command("set")
def destination_set(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="tenant id")],
    url: Annotated[str | None, typer.Option(help="base URL of the tenant's app")] = None,
    path: Annotated[str | None, typer.Option(help="path events are POSTed to")] = None,
    bearer_token: Annotated[str | None, typer.Option(help="token, env:VAR or @file")] = None,
    oauth_token_url: Annotated[str | None, typer.Option(help="OAuth2 client-credentials token endpoint")] = None,
    oauth_client_id: Annotated[str | None, typer.Option()] = None,
    oauth_client_secret: Annotated[str | None, typer.Option(help="secret, env:VAR or @file")] = None,
    oauth_scope: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Give a tenant its own destination; prints its new signing secret once, when one is made."""
    from inlet.delivery import set_destination
    from inlet.settings import get_settings
    from inlet.store import open_store

    oauth_parts = (oauth_token_url, oauth_client_id, oauth_client_secret)
    if any(oauth_parts) and not all(oauth_parts):
        raise typer.BadParameter("OAuth2 needs --oauth-token-url, --oauth-client-id and --oauth-client-secret")
    oauth: tuple[str, str, SecretStr, str | None] | None = None
    if oauth_token_url and oauth_client_id and oauth_client_secret:
        oauth = (oauth_token_url, oauth_client_id, credential_value(oauth_client_secret), oauth_scope)
    with known_errors():
        settings = get_settings()
        token = credential_value(bearer_token) if bearer_token else None
        created = set_destination(
            open_store(settings.store_url), settings, tenant, url=url, path=path, bearer_token=token, oauth=oauth
        )
        typer.echo(f"destination of {tenant} saved")
        if created:
            typer.echo(f"its signing secret (give it to the app; it is not shown again): {created}")


@destination_app.command("rotate-secret")
def rotate(tenant: OptionalTenant = None) -> None:
    """Make a new signing secret; deliveries carry both signatures until `retire-secret`."""
    from inlet.delivery import rotate_secret
    from inlet.settings import get_settings
    from inlet.store import open_store

    with known_errors():
        settings = get_settings()
        new = rotate_secret(open_store(settings.store_url), settings, tenant)
        typer.echo(f"new signing secret (give it to the app, then run `retire-secret`): {new}")


@destination_app.command("retire-secret")
def retire(tenant: OptionalTenant = None) -> None:
    """Stop signing with the old secret once the app knows the new one."""
    from inlet.delivery import retire_secret
    from inlet.settings import get_settings
    from inlet.store import open_store

    with known_errors():
        settings = get_settings()
        done = retire_secret(open_store(settings.store_url), settings, tenant)
        typer.echo("the old secret is retired" if done else "no rotation was under way")
