"""`inlet import full|poll|incremental`: run a connection's flows in this process, on the running Prefect server.

A full import shows a progress bar fed by the run's own progress reports (what its progress artifact gets):
records read, their rate, the time left when the records to expect are known, and the time spent waiting on the
source's rate limit. Prefect's INFO run logs go to the server only (they are in the UI); `--debug` shows them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inlet.cli.common import installation, lazy
from inlet.cli.common import known_errors as _errors
from inlet.cli.output import console, print_summary

if TYPE_CHECKING:
    from inlet import service
    from inlet.local import RunProgress
else:
    service = lazy("inlet.service")

__all__ = ["imports_app", "progress_bar"]

imports_app = typer.Typer(no_args_is_help=True, help="Run imports.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="tenant id")]
ConnectionId = Annotated[str, typer.Option("--connection", "-c", help="connection id")]


def quiet_prefect_console() -> None:
    """Run logs at INFO go to the Prefect server (the UI shows them), not to this terminal; warnings still do."""
    if not os.environ.get("INLET_DEBUG"):
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


@contextmanager
def progress_bar(what: str) -> Iterator[None]:
    """A rich progress bar for the run in this process, moved by its progress reports only: it appears with the
    first report, so a run that fails before reading anything prints only its error."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from inlet.local import watch_progress

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f} records"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
        TimeElapsedColumn(),
        TextColumn("rate limit: waited {task.fields[rate_limited]:.1f} s"),
    )
    bar = Progress(*columns, console=console(err=True), transient=False)
    task = bar.add_task(what, total=None, rate="", eta="", rate_limited=0.0, start=False)
    try:

        def moved(report: RunProgress) -> None:
            if not bar.live.is_started:
                bar.start()
                bar.start_task(task)
            total = max(report.expected or 0, report.records) if report.expected else None
            if report.done:
                total = report.records
            bar.update(task, completed=report.records, total=total, rate_limited=report.seconds_rate_limited)
            speed = bar.tasks[task].speed
            rate = f"{speed:,.0f} records/s" if speed else ""
            left = (total - report.records) / speed if speed and total and not report.done else None
            bar.update(task, rate=rate, eta=f"about {left:,.0f} s left" if left is not None else "")

        with watch_progress(moved):
            yield
    finally:
        if bar.live.is_started:
            bar.stop()


def _run(flow: Any, tenant: str, connection: str, **options: Any) -> Any:
    quiet_prefect_console()
    return service.run_here(installation(), flow, tenant, connection, **options)


@imports_app.command("full")
def import_full(
    tenant: Tenant,
    connection: ConnectionId,
    data_source: Annotated[str | None, typer.Option(help="the data model to import; default the connection's")] = None,
    restart: Annotated[bool, typer.Option(help="ignore an unfinished checkpoint")] = False,
    force_delete: Annotated[bool, typer.Option(help="let the deletion sweep pass its guard")] = False,
) -> None:
    """Run a full import of one connection now (resumes an unfinished one), with a progress bar."""
    with _errors():
        data_source = data_source or service.describe_connection(installation(), tenant, connection).data_source
        options = {"data_source": data_source, "restart": restart, "force_delete": force_delete}
        with progress_bar(f"full import {tenant}/{connection}"):
            summary = _run("full-import", tenant, connection, **options)
        print_summary(summary, title=f"full import {tenant}/{connection}")


@imports_app.command("poll")
def import_poll(tenant: Tenant, connection: ConnectionId) -> None:
    """Poll a connection for changes into its inbox (what the poll-changes schedule runs)."""
    with _errors():
        data_source = service.describe_connection(installation(), tenant, connection).data_source
        summary = _run("poll-changes", tenant, connection, data_source=data_source)
        print_summary(summary, title=f"poll {tenant}/{connection}")


@imports_app.command("incremental")
def import_incremental(tenant: Tenant, connection: ConnectionId) -> None:
    """Apply a connection's inbox to your app now (what the inlet.records.changed trigger runs)."""
    with _errors():
        data_source = service.describe_connection(installation(), tenant, connection).data_source
        summary = _run("incremental-import", tenant, connection, data_source=data_source)
        print_summary(summary, title=f"incremental import {tenant}/{connection}")
