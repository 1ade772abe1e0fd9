"""The Prefect event that starts incremental imports: `inlet.records.changed`, one resource per connection.

The receiver and poll-changes emit it after the inbox holds the changes. A burst is debounced per
connection: the first change emits at once (leading edge), later ones within `window` seconds become one
more emit at the end of the window (trailing edge), so 1,000 webhook calls start a handful of runs, and the
last change is always followed by an event (an incremental run drains the inbox until it is empty).

Who applies the changes is `INLET_INCREMENTAL_RUNNER`. `deployment`: the event's automation creates an
`incremental-import` flow run, which a worker or `serve()` starts in a new process (2-3 s). `task-worker`: the
notification also submits the `apply-inbox` task with `.delay()`, which a Prefect task worker
(`python -m flows.task_worker`) picks up over its websocket at once; the event is then labelled so the
deployment's trigger ignores it, and is still recorded in Prefect's event feed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from uuid import UUID

from prefect import tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event

from flows.incremental_import import apply_inbox
from flows.runtime import TriggeringEvent
from inlet.settings import get_settings
from inlet.tags import run_tags

__all__ = [
    "EVENT",
    "ChangeNotifier",
    "emit_changed",
    "resource_id",
]

EVENT = "inlet.records.changed"  # incremental-import's trigger in prefect.yaml expects it


def resource_id(connection: str) -> str:
    return f"inlet.connection.{connection}"


def emit_changed(
    tenant: str, connection: str, *, source: str = "webhook", submit: bool = True, runner: str | None = None
) -> None:
    """Tell Prefect that a connection's inbox holds changes and, on a task worker, submit the run applying them
    (`submit=False` where the caller applies them itself, as poll-changes does). `runner="task-worker"` whatever
    the setting: the scheduler's polls run on a task worker, which applies what they heard."""
    runner = runner or get_settings().incremental_runner
    resource = {
        "prefect.resource.id": resource_id(connection),
        "inlet.tenant": tenant,
        "inlet.source": source,
        "inlet.runner": runner,
    }
    payload = {"tenant": tenant, "connection": connection, "source": source}
    event = emit_event(event=EVENT, resource=resource, payload=payload)
    if runner == "task-worker" and submit:
        trigger = TriggeringEvent(id=str(event.id), occurred=event.occurred.isoformat()) if event else None
        _submissions.submit(tenant, connection, trigger)


class _Submissions:
    """The `apply-inbox` run last submitted for each connection: while it has not started, a new change needs no
    run of its own (that run reads the inbox after the change was committed), so a burst costs one task run, not
    one per notification. A submission older than `_TRUST_SECONDS` that has still not started (a task worker that
    is down) is not trusted any more: a new run is submitted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._unstarted: dict[str, tuple[UUID, float]] = {}

    def submit(self, tenant: str, connection: str, trigger: TriggeringEvent | None) -> None:
        with self._lock:
            lock = self._locks.setdefault(connection, threading.Lock())
        with lock:
            last = self._unstarted.get(connection)
            if last is not None and time.monotonic() - last[1] < _TRUST_SECONDS and not _started(last[0]):
                return
            with tags(*run_tags(tenant, connection)):
                future = apply_inbox.delay(
                    tenant, connection, triggered_by=trigger, warm_seconds=get_settings().warm_seconds
                )
            self._unstarted[connection] = (future.task_run_id, time.monotonic())


_TRUST_SECONDS = 10.0
_submissions = _Submissions()


def _started(task_run_id: UUID) -> bool:
    """Whether the run has left Scheduled and Pending (a run whose state cannot be read counts as started)."""
    try:
        with get_client(sync_client=True) as client:
            state = client.read_task_run(task_run_id).state
    except Exception:  # the server did not answer: submit, as before this shortcut
        return True
    return state is None or state.type not in (StateType.SCHEDULED, StateType.PENDING)


class ChangeNotifier:
    """Debounced `emit_changed`, per connection, safe to call from any thread."""

    def __init__(
        self,
        window: float = 1.0,
        emit: Callable[[str, str], None] = emit_changed,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._trailing: dict[str, threading.Timer] = {}
        self.emitted = 0

    def notify(self, tenant: str, connection: str) -> None:
        with self._lock:
            now = self._clock()
            last = self._last.get(connection)
            if last is None or now - last >= self._window:
                self._last[connection] = now
                self._fire(tenant, connection)
            elif connection not in self._trailing:
                timer = threading.Timer(last + self._window - now, self._trail, (tenant, connection))
                timer.daemon = True
                self._trailing[connection] = timer
                timer.start()

    def close(self) -> None:
        """Fire every pending trailing emit now (a stopping receiver must not strand changes)."""
        with self._lock:
            pending = list(self._trailing.items())
            self._trailing.clear()
        for _, timer in pending:
            timer.cancel()
            tenant, connection = timer.args
            self._fire(str(tenant), str(connection))

    def _trail(self, tenant: str, connection: str) -> None:
        with self._lock:
            self._trailing.pop(connection, None)
            self._last[connection] = self._clock()
        self._fire(tenant, connection)

    def _fire(self, tenant: str, connection: str) -> None:
        self.emitted += 1
        self._emit(tenant, connection)
