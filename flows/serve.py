"""Serve inlet's deployments from this process (what `inlet up` runs), so manual runs from the UI work."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger

from flows.deliver_outbox import deliver_outbox
from flows.events import EVENT, TRIGGER_MATCH, TRIGGER_PARAMETERS
from flows.full_import import full_import
from flows.incremental_import import incremental_import
from flows.poll_changes import poll_changes
from flows.remap import remap, retry_quarantine


def _sync(deployment: RunnerDeployment | Coroutine[Any, Any, RunnerDeployment]) -> RunnerDeployment:
    # `to_deployment` is sync-compatible: called outside an event loop it returns the deployment itself.
    assert isinstance(deployment, RunnerDeployment)
    return deployment


def main() -> None:
    serve(
        _sync(
            full_import.to_deployment(
                name="full-import",
                description="Full import of one tenant's connection into the team's app; resumes from its checkpoint.",
                tags=["inlet", "full-import"],
            )
        ),
        _sync(
            deliver_outbox.to_deployment(
                name="deliver-outbox",
                description="Retry the deliveries that wait in the outbox (parked, deferred); every minute.",
                tags=["inlet", "delivery"],
                interval=60,
            )
        ),
        _sync(remap.to_deployment(name="remap", description=remap.description, tags=["inlet", "mappings"])),
        _sync(
            retry_quarantine.to_deployment(
                name="retry-quarantine", description=retry_quarantine.description, tags=["inlet", "mappings"]
            )
        ),
        _sync(
            incremental_import.to_deployment(
                name="incremental-import",
                description="Apply a connection's inbox to the team's app (triggered by inlet.records.changed).",
                tags=["inlet", "incremental"],
                triggers=[
                    DeploymentEventTrigger(
                        expect={EVENT},
                        match=TRIGGER_MATCH,
                        parameters=TRIGGER_PARAMETERS,
                    )
                ],
            )
        ),
        _sync(
            poll_changes.to_deployment(
                name="poll-changes",
                description="Pull a connection's changes into its inbox (run it on a schedule per connection).",
                tags=["inlet", "poll"],
            )
        ),
        limit=4,
    )


if __name__ == "__main__":
    main()
