"""A run's progress, as it goes, for whoever in this process watches it (the CLI's progress bar).

The flow reports what it also puts into its progress artifact: records read, the records it expects (the
connection's live records, when a previous import counted them) and the seconds it waited on the source's rate
limit. Reports go to the watchers of this process only; a run on a worker has none, and reporting costs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["RunProgress", "report_progress", "watch_progress"]


@dataclass(frozen=True)
class RunProgress:
    flow: str
    connection: str
    records: int
    expected: int | None
    seconds_rate_limited: float
    done: bool = False


Watcher = Callable[[RunProgress], None]
_WATCHERS: list[Watcher] = []
_LOCK = threading.Lock()


@contextmanager
def watch_progress(watcher: Watcher) -> Iterator[None]:
    """Call `watcher` with every progress report made in this process while the block runs."""
    with _LOCK:
        _WATCHERS.append(watcher)
    try:
        yield
    finally:
        with _LOCK:
            _WATCHERS.remove(watcher)


def report_progress(progress: RunProgress) -> None:
    """Hand a report to every watcher (a watcher that fails does not fail the run)."""
    with _LOCK:
        watchers = list(_WATCHERS)
    for watcher in watchers:
        try:
            watcher(progress)
        except Exception:  # a display problem must never stop an import
            logging.getLogger(__name__).debug("a progress watcher failed", exc_info=True)
