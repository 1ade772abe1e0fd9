"""Apply what a `sync-polls` batch heard inside the batch's own task run.

An `apply-inbox` task run per connection cost the Prefect server a task run (its creation and state changes),
tags, a summary artifact and a log line, all SQLite writes: with every poll hearing changes, a task worker's
batches waited on the server's answers while the machine idled. Here a connection's drain is a plain call, and
the batch publishes one artifact listing each connection's figures.

Single flight holds as for every other run: the batch takes the connection's turn in this process (`take_turn`:
behind a run of this process applying it now, or not at all when one waits for it or keeps it warm) and its
Prefect slot (`single_flight`), never waiting for the slot. A connection that another run holds (a webhook's
apply-inbox, an import, a reconciliation) is left at once: its changes stay in the inbox, for that run or the
connection's next poll.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flows.artifacts import publish_delivery_status, publish_rows
from flows.incremental_import import IncrementalSummary, drain_inbox
from flows.runtime import ImportRuntime
from flows.single_flight import SlotTaken, single_flight, take_turn
from inlet.settings import Settings
from inlet.store import Store

__all__ = ["Applied", "BatchApplies", "apply_polled"]

_HELD = "held by another run: its changes wait in the inbox for that run or the next poll"
_FIGURES = ("inbox_events", "created", "updated", "deleted", "unchanged", "quarantined", "poison_events")


@dataclass
class Applied:
    """One connection's apply in a batch: its figures, and where its time went (the slot's calls to the Prefect
    server, taking and giving back, against the drain itself)."""

    summary: IncrementalSummary
    slot_seconds: float
    drain_seconds: float


async def apply_polled(run: ImportRuntime, run_id: str) -> Applied | None:
    """Drain an opened connection's inbox in the calling run (`run_id`: the batch's); None, at once, when another
    run holds the connection."""
    connection = run.job.connection
    async with take_turn(connection) as ours:
        if not ours:  # another run of this process waits for the connection or keeps it warm: it applies these
            return None
        summary = IncrementalSummary.of(run.job, run_id)
        asked = time.perf_counter()
        try:
            async with single_flight(connection, run.settings.single_flight_lease_seconds, wait_seconds=0):
                summary.seconds_waiting_for_slot = round(time.perf_counter() - asked, 3)
                draining = time.perf_counter()
                await drain_inbox(run, summary)
                drained = time.perf_counter() - draining
        except SlotTaken:
            return None
        return Applied(summary, round(time.perf_counter() - asked - drained, 3), round(drained, 3))


@dataclass
class BatchApplies:
    """What one batch applied, connection by connection."""

    applied: dict[str, Applied] = field(default_factory=dict)

    async def publish(self, app: str, label: str, held: list[str], engine: Store, settings: Settings) -> None:
        """One table artifact for the batch (a row per connection that applied, or that it left to another run
        holding it), when there is one; the delivery figures when the app did not take everything."""
        if not (self.applied or held):
            return
        rows: list[dict[str, Any]] = [self._row(c, s) for c, s in self.applied.items()]
        rows += [{"connection": c, "outcome": _HELD} for c in held]
        what = f"polls/{app}/{label}: what each connection applied"
        await publish_rows("poll-batch", app, rows=rows, description=what)
        summaries = [applied.summary for applied in self.applied.values()]
        if any(s.pending_delivery or s.delivery_error or s.dead_letters for s in summaries):
            await publish_delivery_status(engine, settings)

    @staticmethod
    def _row(connection: str, applied: Applied) -> dict[str, Any]:
        summary = applied.summary
        outcome = summary.delivery_error or ("waits in the outbox" if summary.pending_delivery else "applied")
        return {
            "connection": connection,
            **{name: getattr(summary, name) for name in _FIGURES},
            "delivered": summary.delivered,
            "dead_letters": summary.dead_letters,
            "slot_seconds": applied.slot_seconds,
            "drain_seconds": applied.drain_seconds,
            "outcome": outcome,
        }
