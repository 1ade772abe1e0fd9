"""A connection kept warm in a task worker: after draining its inbox, an `apply-inbox` run stays a few seconds,
watching the inbox, and applies what arrives with the runtime it already opened.

A run costs far more than a change: its task run (the hand-off, the server's queue, the worker's pick-up) and
opening the runtime take seconds on a loaded machine, fetch + apply + send about 0.1-0.2 s, and so can taking
the connection's Prefect slot (a write the server answers late when it is busy). A change that arrives while its
connection is warm costs only fetch + apply + send: the warm run keeps the slot (its lease renewed, lapsing with
it when the worker is killed).

It leaves, and frees the slot, at once when another run waits for the slot (`flows.slot_wanted`: an import or a
reconciliation, here or in another process), after `idle_seconds` without a change, and when the task worker
has had no free slot for `_FULL_SECONDS`
(a warm run must not keep another connection's run waiting; runs that only leave their changes to it fill the
worker for an instant, and must not send it away). While it is warm, runs of the connection that start in this
process leave their changes to it (`flows.single_flight.take_turn`); it looks at the inbox once more after it
stops being warm, so a change whose run left it to the warm one is never stranded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
from prefect.task_worker import TaskWorker

from flows.slot_wanted import slot_wanted
from inlet.store import Store, inbox

__all__ = ["changes_arrive", "changes_waiting", "leave_when_worker_full"]

_LOOK_EVERY = 0.05  # seconds between two looks at the inbox: an indexed count, ~0.2 ms of SQLite
_FULL_SECONDS = 0.5
_ASK_SERVER_EVERY = 0.5  # seconds between two reads of the Prefect server: does a run elsewhere wait for the slot?


def _never_full() -> bool:
    return False


_worker_full: Callable[[], bool] = _never_full
_asked: dict[str, float] = {}  # per connection, when the Prefect server was last asked whether a run waits


def leave_when_worker_full(worker: TaskWorker) -> None:
    """Warm runs in this process leave as soon as every slot of `worker` is taken (its `--limit`)."""
    global _worker_full
    _worker_full = lambda: worker.available_tasks == 0  # noqa: E731  # one line; a def would read worse


async def changes_waiting(engine: Store, connection: str) -> bool:
    return await anyio.to_thread.run_sync(inbox.depth, engine, connection) > 0


async def changes_arrive(engine: Store, connection: str, idle_seconds: float) -> bool:
    """True as soon as the connection's inbox holds a change; False after `idle_seconds` without one, when another
    run waits for the connection's slot, or when the task worker is full."""
    now = time.monotonic()
    deadline, full_since = now + idle_seconds, None
    while now < deadline:
        across = now - _asked.get(connection, 0.0) >= _ASK_SERVER_EVERY  # also between drains of a steady stream
        if across:
            _asked[connection] = now
        if await slot_wanted(connection, across_processes=across):  # before the inbox: a stream must not starve it
            return False
        if await changes_waiting(engine, connection):
            return True
        full_since = (full_since or now) if _worker_full() else None
        if full_since is not None and now - full_since >= _FULL_SECONDS:
            return False
        await anyio.sleep(_LOOK_EVERY)
        now = time.monotonic()
    return False
