"""`inlet inbox ...`: poison inbox events (an id the app cannot have, a fetch it rejects for good), set aside so
the rest of the connection's changes are applied; list them, put them back into the drain, or drop them."""

from __future__ import annotations

from typing import Annotated

import typer

from inlet.cli.common import installation
from inlet.cli.common import known_errors as _errors
from inlet.cli.output import DEFAULT_LIMIT, print_slice

__all__ = ["inbox_app"]

inbox_app = typer.Typer(no_args_is_help=True, help="Poison inbox events, set aside with their reason.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
Ids = Annotated[list[int] | None, typer.Option("--id", help="inbox event id, repeatable; default: all")]


@inbox_app.command("list")
def list_events(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    connection: Annotated[str | None, typer.Option("--connection", "-c")] = None,
    limit: Annotated[int, typer.Option(min=1, help="rows to show")] = DEFAULT_LIMIT,
) -> None:
    """The poison events and why each was set aside."""
    from inlet.service import poison_events

    with _errors():
        events = poison_events(installation(), tenant, connection)
        rows = [(e.id, e.tenant_id, e.connection_id, e.kind, e.external_id, e.reason) for e in events]
        command = "inlet inbox list" + (f" -t {tenant}" if tenant else "") + (f" -c {connection}" if connection else "")
        headers = ("id", "tenant", "connection", "kind", "record", "why set aside")
        print_slice(headers, rows, limit, command, empty="no poison events")


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
