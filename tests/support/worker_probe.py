"""A flow deployed by tests/flows/test_worker.py: it says where it ran, then holds until it is stopped if asked.

Its entrypoint, `tests/support/worker_probe.py:worker_probe`, is inside the project, so flows/worker.py starts
its runs as forks. It imports nothing of inlet: the worker imports it at the run's start.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow, get_run_logger

__all__ = ["LOGGED", "worker_probe"]

LOGGED = "worker probe ran in pid"


@flow(name="worker-probe")
def worker_probe(out: str, hold: bool = False) -> None:
    """Write this process's pid, parent pid, working directory and `INLET_PROBE` to `out`; with `hold`, wait
    until the run is cancelled or its process killed."""
    seen = {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "probe": os.environ.get("INLET_PROBE")}
    get_run_logger().info("%s %d", LOGGED, seen["pid"])
    Path(out + ".part").write_text(json.dumps(seen))
    os.replace(out + ".part", out)  # whole, or not there yet
    while hold:
        time.sleep(0.2)
