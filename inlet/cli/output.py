"""How the CLI prints: tables with headers (rich), one page at a time with a footer naming the next page's
command, and times as a person reads them (UTC, with how long ago)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "DEFAULT_LIMIT",
    "cell",
    "console",
    "duration",
    "emit",
    "human_time",
    "print_page",
    "print_record",
    "print_slice",
    "print_summary",
    "print_table",
]

DEFAULT_LIMIT = 50


def emit(renderable: Any, *, err: bool = False) -> None:
    """Print a rich renderable with no trailing blanks on its lines (they would end up in pipes and files)."""
    out = console(err=err)
    with out.capture() as captured:
        out.print(renderable)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    out.file.write(text + "\n")
    out.file.flush()


def console(*, err: bool = False) -> Console:
    """A console on stdout (or stderr); no colours when not a terminal, and wide enough not to cut a row."""
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def human_time(moment: datetime | str | int | float | None, *, now: datetime | None = None) -> str:
    """`2026-12-07 04:44:03 UTC (3 min ago)`; epoch seconds or milliseconds and ISO text are read too."""
    when = _as_datetime(moment)
    if when is None:
        return "-" if moment in (None, "") else str(moment)
    now = now or datetime.now(UTC)
    return f"{when.strftime('%Y-%m-%d %H:%M:%S')} UTC ({_ago((now - when).total_seconds())})"


def _as_datetime(moment: datetime | str | int | float | None) -> datetime | None:
    if isinstance(moment, datetime):
        when = moment
    elif isinstance(moment, bool) or moment is None:
        return None
    elif isinstance(moment, int | float):
        when = datetime.fromtimestamp(moment / 1000 if moment > 1e11 else moment, UTC)  # > 1e11: milliseconds
    else:
        head, _, rest = moment.partition(" ")  # "2026-...T...+00:00 completed": the time and a word after it
        try:
            when = datetime.fromisoformat(head)
        except ValueError:
            return None
        if rest:
            return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _ago(seconds: float) -> str:
    later = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            amount = f"{seconds / size:.0f} {unit}"
            break
    else:
        amount = f"{seconds:.0f} s"
    return f"in {amount}" if later else f"{amount} ago"


def cell(value: Any) -> str:
    """A value as table text: times made human, empty as `-`, mappings as name=value."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return human_time(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, str) and _as_datetime(value) is not None:
        return human_time(value)
    return str(value)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> int:
    """A table with a header row; how many rows it had."""
    from rich.table import Table

    table = Table(*headers, title=title, title_justify="left", header_style="bold", expand=False)
    count = 0
    for row in rows:
        table.add_row(*(cell(value) for value in row))
        count += 1
    if count:
        emit(table)
    return count


def print_page(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], next_cursor: str | None, command: str, *, empty: str
) -> None:
    """One page as a table, then a footer: how to get the next page, or that this was all."""
    if not rows:
        typer.echo(empty)
        return
    print_table(headers, rows)
    if next_cursor:
        typer.echo(f"{len(rows)} shown; more: {command} --cursor {next_cursor}")
    else:
        typer.echo(f"{len(rows)} shown, no more.")


def print_slice(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int, command: str, *, empty: str) -> None:
    """The first `limit` rows of a list as a table, then how many more there are and how to see them."""
    if not rows:
        typer.echo(empty)
        return
    print_table(headers, rows[:limit])
    more = len(rows) - limit
    if more > 0:
        typer.echo(f"{limit} shown, {more} more: {command} --limit {len(rows)}")
    else:
        typer.echo(f"{len(rows)} shown, no more.")


def print_record(fields: dict[str, Any], *, title: str | None = None) -> None:
    """One thing as a two-column table: what, and its value."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    for name, value in fields.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and name in _SECONDS:
            table.add_row(name.replace("_", " "), duration(value))
        elif isinstance(value, int | float) and not isinstance(value, bool) and name.startswith("seconds_"):
            table.add_row(name.removeprefix("seconds_").replace("_", " "), duration(value))
        elif isinstance(value, int | float) and not isinstance(value, bool) and name.endswith("_seconds"):
            table.add_row(name.removesuffix("_seconds").replace("_", " "), duration(value))
        else:
            table.add_row(name.replace("_", " "), cell(value))
    emit(table)


_SECONDS = {"poll_every", "reconcile_every"}


def duration(seconds: float) -> str:
    """`0.4 s`, `42 s`, `5 min`, `1.5 h`, `1 d`."""
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds else "0 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86_400:.1f} d".replace(".0 d", " d")


def print_summary(summary: Any, *, title: str) -> None:
    """A run summary (a pydantic model or a mapping), once, as a two-column table."""
    figures = summary.model_dump() if hasattr(summary, "model_dump") else dict(summary)
    print_record(figures, title=title)
