"""Serve a Prefect background task in the test's process until the runs of a given name have all ended."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterName,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType, TaskRun

from flows.task_parameters import TidyTaskWorker

__all__ = ["scheduled_runs", "serve_until_final"]


async def serve_until_final(task: Any, name: str, runs_expected: int = 1) -> list[str]:
    """Run a task worker for `task` until every task run named `name`, at least `runs_expected` of them, is in a
    final state; their state names. (A background run takes its name when it starts: one still waiting is not
    counted yet.)

    Waits on progress (the runs' states), with no deadline of its own: the test's timeout bounds it."""
    worker = TidyTaskWorker(task)  # as flows.task_worker runs them
    running = asyncio.create_task(worker.astart())
    try:
        while True:
            assert not running.done(), "the task worker stopped before the run ended"
            async with get_client() as client:
                runs = await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])))
            if len(runs) >= runs_expected and all(r.state is not None and r.state.is_final() for r in runs):
                return [str(r.state_name) for r in runs]
            await asyncio.sleep(0.2)
    finally:
        running.cancel()


async def scheduled_runs(task_name: str) -> list[TaskRun]:
    """The runs of this task still scheduled (a background run is named by its template only once it runs)."""
    scheduled = TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.SCHEDULED]))
    async with get_client() as client:
        return await client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=f"{task_name}-"), state=scheduled)
        )
