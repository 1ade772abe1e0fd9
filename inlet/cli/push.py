"""`inlet push ...`: changes your app pushed to its tenants' apps: status, dead letters, replay, a run now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inlet.cli.common import installation, known_errors, lazy
from inlet.cli.imports import quiet_prefect_console
from inlet.cli.output import human_time, print_summary, print_table

if TYPE_CHECKING:
    from inlet import service
else:
    service = lazy("inlet.service")

__all__ = ["push_app", "status"]

push_app = typer.Typer(no_args_is_help=True, help="Pushes from your app to your tenants' apps (bi-directional sync).")
OptionalTenant = Annotated[str | None, typer.Option("--tenant", "-t", help="tenant id (default: every tenant)")]
_HEADERS = ("connection", "data source", "pending", "deferred", "dead", "written", "failed", "conflicts", "echoes")


@push_app.command("status")
def status(tenant: OptionalTenant = None) -> None:
    """Per connection: pushes pending, deferred and dead; written, failed, conflicts, echoes suppressed."""
    with known_errors():
        figures = service.push_status(installation(), tenant)
        if not figures:
            typer.echo("push: nothing pushed yet")
            return
        rows = [
            (f.connection, f.data_source, f.pending, f.deferred, f.dead, f.written, f.failed, f.conflicts)
            + (f.echo_suppressed, human_time(f.last_push_at), human_time(f.oldest_pending))
            for f in figures
        ]
        print_table((*_HEADERS, "last push", "oldest pending"), rows, title="push (your app → tenants' apps)")


@push_app.command("dead")
def dead(tenant: OptionalTenant = None) -> None:
    """Pushes the external app refused, with its answer."""
    with known_errors():
        letters = service.dead_push_letters(installation(), tenant)
        if not letters:
            typer.echo("no dead pushes")
            return
        headers = list(letters[0])
        print_table(headers, [[row.get(h) for h in headers] for row in letters])


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
        quiet_prefect_console()
        summary = service.run_here(installation(), "push-outbox", tenant, connection)
        print_summary(summary, title=f"push {tenant}/{connection}")
