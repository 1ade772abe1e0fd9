"""Served runs start as forks of a server that already imported Prefect and the flows (flows/forked_runs.py)."""

from __future__ import annotations

import asyncio
import copyreg
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import prefect.flow_engine
import pytest
from prefect import Flow, flow, get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from pydantic import Field

from flows.forked_runs import start_runs_from_a_fork_server
from flows.serve import deployments

PRELOADED = "flows.remap"  # a served flow's module the flow below does not import


@flow(name="forked-run-probe")
def forked_run_probe(out: str, marks: Annotated[int, Field(ge=1)] = 1) -> None:
    """Its parameters are typed by strings (this module's `from __future__ import annotations`), as the scheduler's
    are: they resolve only in the module's namespace, so the flow must reach the run by reference."""
    seen = {"pid": os.getpid(), "ppid": os.getppid(), "preloaded": PRELOADED in sys.modules, "marks": marks}
    Path(out).write_text(json.dumps(seen))


def test_a_run_is_a_fork_of_the_server_with_the_flows_imported_and_completes(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(prefect.flow_engine, "multiprocessing", multiprocessing)  # restored after the test
    request.addfinalizer(lambda: copyreg.dispatch_table.pop(Flow, None))
    start_runs_from_a_fork_server([PRELOADED])
    out = tmp_path / "probe.json"

    process = prefect.flow_engine.run_flow_in_subprocess(forked_run_probe, parameters={"out": str(out), "marks": 2})
    process.join()

    assert process.exitcode == 0
    seen = json.loads(out.read_text())
    assert seen["pid"] == process.pid and seen["ppid"] != os.getpid()  # the fork server's child, not ours
    assert seen["preloaded"] is True and seen["marks"] == 2
    assert asyncio.run(_states("forked-run-probe")) == ["COMPLETED"]


def test_importing_the_served_flows_starts_no_thread() -> None:
    """The fork server imports these modules and then forks: a thread started at import would not survive a fork."""
    modules = sorted({d.entrypoint.rpartition(".")[0] for d in deployments() if d.entrypoint})
    program = "import importlib, threading, sys\n"
    program += f"for name in {modules!r}: importlib.import_module(name)\n"
    program += "print(threading.active_count())"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1", result.stderr


async def _states(flow_name: str) -> list[str]:
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [run.state.type.value for run in runs if run.state is not None]
