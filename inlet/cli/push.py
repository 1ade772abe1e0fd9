"""`inlet push ...`: changes your app pushed to its tenants' apps: status, dead letters, replay, a run now."""

from __future__ import annotations

from typing import Annotated

import typer

from inlet import service
from inlet.cli.common import installation, known_errors
from inlet.local import format_summary, run_flow
from inlet.settings import get_settings

__all__ = ["push_app", "status"]

push_app = typer.Typer(no_args_is_help=True, help="Pushes from your app to your tenants' apps (bi-directional sync).")
OptionalTenant = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant id (default: every tenant)")]


@push_app.command("status")
def status(tenant: OptionalTenant = None) -> None:
    """Per connection: pushes pending, deferred and dead; written, failed, conflicts, echoes suppressed."""
    with known_errors():
        figures = service.push_status(installation(), tenant)
        if not figures:
            typer.echo("push: nothing pushed yet")
        for row in figures:
            typer.echo("push  " + "  ".join(f"{k}={v}" for k, v in row.__dict__.items()))


@push_app.command("dead")
def dead(tenant: OptionalTenant = None) -> None:
    """Pushes the external app refused, with its answer."""
    with known_errors():
        for row in service.dead_push_letters(installation(), tenant):
            typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))


@push_app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="dead push ids (see `inlet push dead`)")] = None,
    tenant: OptionalTenant = None,
    every: Annotated[bool, typer.Option("--all", help="every dead push")] = False,
) -> None:
    """Send dead pushes again (after a fix), in their original order."""
    with known_errors():
        count = service.replay_push_letters(installation(), ids=ids, tenant=tenant, every=every)
        typer.echo(f"{count} dead pushes are pending again")


@push_app.command("run")
def run(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="tenant id")],
    connection: Annotated[str, typer.Option("--connection", "-c", help="connection id")],
) -> None:
    """Write the connection's pending pushes now, as a Prefect run."""
    with known_errors():
        summary = run_flow(get_settings(), "push-outbox", tenant, connection)
        for line in format_summary(summary):
            typer.echo(line)
