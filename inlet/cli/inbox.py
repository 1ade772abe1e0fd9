"""`inlet inbox ...`: poison inbox events (an id the app cannot have, a fetch it rejects for good), set aside so
the rest of the connection's changes are applied; list them, put them back into the drain, or drop them."""

from __future__ import annotations

from typing import Annotated

import typer

from inlet.cli.common import installation
from inlet.cli.common import known_errors as _errors

__all__ = ["inbox_app"]

inbox_app = typer.Typer(no_args_is_help=True, help="Poison inbox events, set aside with their reason.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
Ids = Annotated[list[int] | None, typer.Option("--id", help="inbox event id, repeatable; default: all")]


@inbox_app.command("list")
def list_events(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    connection: Annotated[str | None, typer.Option("--connection", "-c")] = None,
) -> None:
    """The poison events and why each was set aside."""
    from inlet.service import poison_events

    with _errors():
        for e in poison_events(installation(), tenant, connection):
            typer.echo(f"{e.id}\t{e.tenant_id}\t{e.connection_id}\t{e.kind}\t{e.external_id}\t{e.reason}")


@inbox_app.command("retry")
def retry(tenant: Tenant, event_id: Ids = None) -> None:
    """Put poison events back into the drain (after the app or the connector was fixed)."""
    from inlet.service import retry_poison

    with _errors():
        count = retry_poison(installation(), tenant, event_id)
        typer.echo(f"{count} events back in the inbox; the next poll or webhook applies them")


@inbox_app.command("drop")
def drop(tenant: Tenant, event_id: Ids = None) -> None:
    """Delete poison events."""
    from inlet.service import drop_poison

    with _errors():
        typer.echo(f"{drop_poison(installation(), tenant, event_id)} events dropped")
