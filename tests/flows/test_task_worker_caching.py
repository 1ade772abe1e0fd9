"""Prefect's task worker and the scheduler's background tasks: the same work submitted twice by one scheduler run
runs twice. Prefect 3.9.1's TaskWorker serves a task whose policy is NO_CACHE with its DEFAULT policy instead
(inputs + task source + the flow run's id): with NO_CACHE, the second identical `.delay()` of one flow run ended
"Cached" without running (flows/task_cache.py). And the worker deletes a run's parameters file once it ran it
(flows/task_parameters.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prefect import flow
from prefect.settings import get_current_settings

from flows.scheduler import sync_polls
from flows.task_parameters import parameters_file
from tests.conftest import InletEnvFactory
from tests.support.task_runs import scheduled_runs, serve_until_final

LABEL = "submitted-twice"


@flow(name="submit-a-batch-twice", persist_result=False)
async def submit_a_batch_twice() -> None:
    """As one sync-scheduler run does when a connection's poll falls due at two of its ticks (60 s polls)."""
    for _ in range(2):
        sync_polls.delay("hubspot", LABEL, [], 60.0)


def test_the_same_batch_submitted_twice_in_one_scheduler_run_runs_twice_and_leaves_no_parameters_file(
    inlet_env: InletEnvFactory,
) -> None:
    inlet_env(records=1, start_app=False)
    folder = Path(get_current_settings().results.local_storage_path) / "parameters"
    before = set(folder.iterdir()) if folder.exists() else set()
    asyncio.run(submit_a_batch_twice())
    written = set(folder.iterdir()) - before  # by .delay(), one per run
    scheduled = {parameters_file(run) for run in asyncio.run(scheduled_runs("sync-polls"))}
    assert len(written) == 2 and written <= scheduled
    runs = asyncio.run(serve_until_final(sync_polls, f"polls/hubspot/{LABEL}", 2))
    assert sorted(runs) == ["Completed", "Completed"]
    assert not any(path.exists() for path in written)  # the worker deleted each once it ran it
