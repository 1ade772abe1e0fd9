"""Serve a Prefect background task in the test's process until the runs of a given name have all ended."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from prefect.task_worker import TaskWorker

__all__ = ["serve_until_final"]


async def serve_until_final(task: Any, name: str) -> list[str]:
    """Run a task worker for `task` until every task run named `name` is in a final state; their state names.

    Waits on progress (the runs' states), with no deadline of its own: the test's timeout bounds it."""
    worker = TaskWorker(task)
    running = asyncio.create_task(worker.astart())
    try:
        while True:
            assert not running.done(), "the task worker stopped before the run ended"
            async with get_client() as client:
                runs = await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])))
            if runs and all(r.state is not None and r.state.is_final() for r in runs):
                return [str(r.state_name) for r in runs]
            await asyncio.sleep(0.2)
    finally:
        running.cancel()
