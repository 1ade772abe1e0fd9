"""`inlet import full|poll|incremental`: run a connection's flows in this process."""

from __future__ import annotations

from typing import Annotated

import typer

from inlet import service
from inlet.cli.common import installation
from inlet.cli.common import known_errors as _errors
from inlet.local import format_summary

__all__ = ["imports_app"]

imports_app = typer.Typer(no_args_is_help=True, help="Run imports.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@imports_app.command("full")
def import_full(
    tenant: Tenant,
    connection: ConnectionId,
    data_source: Annotated[str, typer.Option(help="the data model to import")] = "users",
    restart: Annotated[bool, typer.Option(help="ignore an unfinished checkpoint")] = False,
    force_delete: Annotated[bool, typer.Option(help="let the deletion sweep pass its guard")] = False,
) -> None:
    """Run a full import of one connection now (resumes an unfinished one)."""
    with _errors():
        summary = service.run_here(
            installation(),
            "full-import",
            tenant,
            connection,
            data_source=data_source,
            restart=restart,
            force_delete=force_delete,
        )
        _echo_lines(format_summary(summary))


@imports_app.command("poll")
def import_poll(tenant: Tenant, connection: ConnectionId) -> None:
    """Poll a connection for changes into its inbox (what the poll-changes schedule runs)."""
    with _errors():
        _echo_lines(format_summary(service.run_here(installation(), "poll-changes", tenant, connection)))


@imports_app.command("incremental")
def import_incremental(tenant: Tenant, connection: ConnectionId) -> None:
    """Apply a connection's inbox to your app now (what the inlet.records.changed trigger runs)."""
    with _errors():
        _echo_lines(format_summary(service.run_here(installation(), "incremental-import", tenant, connection)))
