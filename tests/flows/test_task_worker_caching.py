"""Prefect's task worker and the scheduler's background tasks: the same work submitted twice by one scheduler run
runs twice. Prefect 3.9.1's TaskWorker serves a task whose policy is NO_CACHE with its DEFAULT policy instead
(inputs + task source + the flow run's id): with NO_CACHE, the second identical `.delay()` of one flow run ended
"Cached" without running (flows/task_cache.py)."""

from __future__ import annotations

import asyncio

from prefect import flow

from flows.scheduler import sync_polls
from tests.conftest import InletEnvFactory
from tests.support.task_runs import serve_until_final

LABEL = "submitted-twice"


@flow(name="submit-a-batch-twice", persist_result=False)
async def submit_a_batch_twice() -> None:
    """As one sync-scheduler run does when a connection's poll falls due at two of its ticks (60 s polls)."""
    for _ in range(2):
        sync_polls.delay("hubspot", LABEL, [], 60.0)


def test_the_same_batch_submitted_twice_in_one_scheduler_run_runs_twice(inlet_env: InletEnvFactory) -> None:
    inlet_env(records=1, start_app=False)
    asyncio.run(submit_a_batch_twice())
    assert sorted(asyncio.run(serve_until_final(sync_polls, f"polls/hubspot/{LABEL}"))) == ["Completed", "Completed"]
