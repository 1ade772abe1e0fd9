"""The figures a run reports (its summary artifact, its log line and what the flow returns), one model per
kind of run over shared bases, so a figure means the same in every summary."""

from __future__ import annotations

from typing import Annotated, Self

import anyio
from pydantic import BaseModel, Field

from flows.runtime import ImportJob, ImportRuntime
from inlet.delivery import DrainResult
from inlet.errors import QuarantineShareExceeded
from inlet.service.quarantine import quarantine_failure
from inlet.store import PageCounts

__all__ = ["Auth", "DeliverySummary", "RunSummary", "fail_on_quarantine_share"]

Auth = Annotated[str, Field(description="needs_reauth: the OAuth grant was revoked; the tenant must connect again")]


class RunSummary(BaseModel):
    """Whose run it was."""

    tenant: str
    connection: str
    data_source: str
    flow_run_id: str = ""

    @classmethod
    def of(cls, job: ImportJob, run_id: str = "") -> Self:
        data_source = job.data_source or "-"  # "-": the connection's, before the run read it
        return cls(tenant=job.tenant, connection=job.connection, data_source=data_source, flow_run_id=run_id)


class DeliverySummary(RunSummary):
    """A run that writes the ledger and the outbox, then delivers: what it classified and what the app took."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    echo_suppressed: int = 0  # inlet's own writes heard again (bi-directional sync), not sent back
    delivered: int = 0
    dead_letters: int = 0
    pending_delivery: bool = False
    delivery_error: str = ""  # why the run fails for its deliveries, with the fix (DrainResult.failure)

    def add_counts(self, counts: PageCounts) -> None:
        self.created += counts.created
        self.updated += counts.updated
        self.unchanged += counts.unchanged
        self.deleted += counts.deleted
        self.quarantined += counts.quarantined
        self.echo_suppressed += counts.echo_suppressed

    def add_delivery(self, drained: DrainResult) -> None:
        self.delivered += drained.delivered
        self.dead_letters += drained.dead
        self.pending_delivery = self.pending_delivery or drained.pending_left
        self.delivery_error = drained.failure() or self.delivery_error


async def fail_on_quarantine_share(run: ImportRuntime, run_id: str, records: int, quarantined: int) -> None:
    """Fail the run when it quarantined more of its records than INLET_MAX_QUARANTINE_SHARE allows."""
    job = run.job
    failure = await anyio.to_thread.run_sync(
        lambda: quarantine_failure(
            run.engine, job.tenant, job.connection, run_id, records, quarantined, run.settings.max_quarantine_share
        )
    )
    if failure:
        raise QuarantineShareExceeded(failure)
