"""Serve inlet's deployments from this process (what `inlet up` runs), so manual runs from the UI work."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.deliver_outbox import deliver_outbox
from flows.full_import import full_import


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
                description="Send what waits in a connection's outbox to the team's app.",
                tags=["inlet", "delivery"],
            )
        ),
        limit=4,
    )


if __name__ == "__main__":
    main()
