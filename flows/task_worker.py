"""A Prefect task worker: the scheduler's `sync-connection` runs (imports, reconciliations, resyncs), its batched
`sync-polls` runs, and the fast
incremental path's `apply-inbox` runs (`INLET_INCREMENTAL_RUNNER=task-worker`).

It subscribes to the server's scheduled `apply-inbox` task runs over a websocket and runs each at once in
this process: no new process per run and no polling interval, so a webhook's change reaches the team's app
in well under a second. Runs stay visible in the Prefect UI as task runs; single flight per connection holds.
SIGTERM stops it (Prefect's own handler); a run cut short leaves its batch in the inbox for the next one.
A run's parameters file is deleted once it ran (flows/task_parameters.py).
"""

from __future__ import annotations

import argparse
import asyncio
import threading

import uvicorn
from prefect.task_worker import TaskWorker, create_status_server

from flows.incremental_import import apply_inbox
from flows.poll_batch import sync_polls
from flows.scheduler import sync_connection
from flows.task_parameters import TidyTaskWorker
from flows.warm import leave_when_worker_full


def _status_server(worker: TaskWorker, port: int) -> None:
    """Prefect's status app on 127.0.0.1, in a thread of its own: `serve(status_server_port=)` would let uvicorn
    reconfigure logging on the worker's loop, which Prefect's API log handler refuses."""
    config = uvicorn.Config(
        create_status_server(worker), host="127.0.0.1", port=port, access_log=False, log_config=None
    )
    threading.Thread(target=uvicorn.Server(config).run, name="task-worker-status", daemon=True).start()


async def work(limit: int, status_port: int | None) -> None:
    worker = TidyTaskWorker(apply_inbox, sync_connection, sync_polls, limit=limit)
    leave_when_worker_full(worker)
    if status_port is not None:
        _status_server(worker, status_port)
    await worker.astart()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=4, help="task runs at once (across connections)")
    parser.add_argument("--status-port", type=int, default=None, help="serve GET /status on 127.0.0.1")
    options = parser.parse_args(argv)
    asyncio.run(work(options.limit, options.status_port))


if __name__ == "__main__":
    main()
