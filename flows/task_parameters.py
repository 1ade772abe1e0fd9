"""A task worker that leaves no parameters file behind.

`.delay()` writes a background task run's parameters to Prefect's task scheduling storage, and Prefect's task
worker reads them back when it runs the task; nothing deletes them. On the embedded default (no
`PREFECT_TASKS_SCHEDULING_DEFAULT_STORAGE_BLOCK`) that storage is a local folder,
`<PREFECT_HOME>/storage/parameters/<id>`: about 12,000 files a day at 1,000 connections polled every 300 s, plus
every webhook's `apply-inbox` run. `TidyTaskWorker` deletes a run's file once the worker has run it (whatever its
final state: the run's parameters are in the run, and a background task run is never delivered again). A run
the worker never took (its process killed first) keeps its file. With a storage block of its own (S3, GCS:
shared by the hosts of a scale-out), Prefect's file systems have no delete: give the bucket's `parameters/`
prefix an expiry rule (docs/scale-out.md).
"""

from __future__ import annotations

from pathlib import Path

import anyio
from prefect.client.schemas.objects import TaskRun
from prefect.settings import get_current_settings
from prefect.task_worker import TaskWorker

__all__ = ["TidyTaskWorker", "parameters_file"]


class TidyTaskWorker(TaskWorker):
    """Prefect's task worker, deleting each run's parameters file (embedded default storage) once it ran it."""

    async def _safe_submit_scheduled_task_run(self, task_run: TaskRun) -> None:
        path = parameters_file(task_run)  # from its Scheduled state, which running it replaces
        try:
            await super()._safe_submit_scheduled_task_run(task_run)
        finally:
            if path is not None:
                await anyio.Path(path).unlink(missing_ok=True)


def parameters_file(task_run: TaskRun) -> Path | None:
    """Where `.delay()` wrote this run's parameters, when that is a local folder (the embedded default). Read
    from the run's Scheduled state: the states after it do not carry the id."""
    settings = get_current_settings()
    state = task_run.state
    parameters_id = getattr(state.state_details, "task_parameters_id", None) if state is not None else None
    if parameters_id is None or settings.tasks.scheduling.default_storage_block is not None:
        return None
    return Path(settings.results.local_storage_path) / "parameters" / str(parameters_id)
