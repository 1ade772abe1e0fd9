"""inlet's process worker (flows/worker.py): a deployment's run is a fork of the worker's fork server, and it
keeps what a process-worker run has (its own pid, the job's env, logs in the API, cancellation, Crashed on a
kill). Real processes: the session's Prefect server and a `python -m flows.worker` on a pool of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.states import Cancelling
from prefect.utilities.dispatch import lookup_type
from prefect.workers.base import BaseWorker
from prefect.workers.process import ProcessWorker

from flows.worker import PROJECT, ForkedRunConfiguration, InletProcessWorker
from inlet.local import free_port, process_log, start_process, stop_process
from tests.support.progress import wait_for_progress
from tests.support.worker_probe import LOGGED

pytestmark = pytest.mark.slow

ENTRYPOINT = "tests/support/worker_probe.py:worker_probe"
THIS_PROJECT = [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}]
STALL_SECONDS = 120  # waits fail when nothing moves for this long (CI shares 2 cores), never on a deadline


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    name: str
    pool: str
    deployment: UUID
    client: SyncPrefectClient


@pytest.fixture(scope="module")
def worker(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A `python -m flows.worker` on a new process pool, and a deployment of the probe flow on that pool."""
    home, pool, name = tmp_path_factory.mktemp("worker"), f"forked-{uuid.uuid4().hex[:8]}", "forked-1"
    port = free_port()
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template())
        )
        deployment = client.create_deployment(
            flow_id=client.create_flow_from_name("worker-probe"),
            name="probe",
            entrypoint=ENTRYPOINT,
            work_pool_name=pool,
            pull_steps=THIS_PROJECT,
            job_variables={"env": {"INLET_PROBE": "from-the-job"}},
        )
        env = {
            "PREFECT_API_URL": prefect_api,
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",  # the run's INFO line must reach the API (the tests run at WARNING)
            "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
            "PREFECT_WORKER_WEBSERVER_PORT": str(port),
            "PYTHONPATH": str(PROJECT),
        }
        command = [sys.executable, "-m", "flows.worker", "--pool", pool, "--name", name, "--with-healthcheck"]
        health = f"http://127.0.0.1:{port}/health"
        process = start_process(command, health, cwd=home, env=env, timeout=180, log_path=home / "worker.log")
        try:
            yield Worker(process, name, pool, deployment, client)
        finally:
            stop_process(process, 15.0)


def test_a_run_completes_in_a_fork_of_the_fork_server_with_the_jobs_env_and_logs(
    worker: Worker, tmp_path: Path
) -> None:
    out = tmp_path / "seen.json"
    run = _wait(worker, _start(worker, out), lambda r: _final(r), "the run to end")
    assert run.state_name == "Completed", process_log(worker.process)
    seen = json.loads(out.read_text())
    fork_server = psutil.Process(seen["ppid"])
    assert seen["pid"] == int(run.infrastructure_pid or 0) and seen["ppid"] != worker.process.pid
    assert fork_server.ppid() == worker.process.pid and "forkserver" in " ".join(fork_server.cmdline())
    assert (seen["cwd"], seen["probe"]) == (str(PROJECT), "from-the-job")  # the pull step's directory, the job's env
    assert worker.name in {w.name for w in worker.client.read_workers_for_work_pool(worker.pool)}  # its heartbeat
    _wait_for_log(worker, run.id, f"{LOGGED} {seen['pid']}")


def test_cancelling_a_run_ends_its_fork(worker: Worker, tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    run_id = _start(worker, out, hold=True)
    pid = _wait_until_running(worker, run_id, out)
    worker.client.set_flow_run_state(run_id, Cancelling())
    run = _wait(worker, run_id, lambda r: _final(r) and not _alive(pid), "the run to end and its fork to go")
    assert run.state_name == "Cancelled"


def test_a_killed_fork_ends_its_run_crashed(worker: Worker, tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    run_id = _start(worker, out, hold=True)
    os.kill(_wait_until_running(worker, run_id, out), signal.SIGKILL)
    run = _wait(worker, run_id, lambda r: _final(r), "the run to end")
    assert run.state_name == "Crashed"


def test_importing_the_worker_leaves_prefects_process_worker_in_place() -> None:
    assert lookup_type(BaseWorker, "process") is ProcessWorker
    assert lookup_type(BaseWorker, "inlet-process") is InletProcessWorker and InletProcessWorker.type == "process"


@pytest.mark.parametrize(
    ("entrypoint", "pull_steps", "job", "forked"),
    [
        (ENTRYPOINT, THIS_PROJECT, {}, True),
        ("flows/full_import.py:full_import", THIS_PROJECT, {}, True),
        (ENTRYPOINT, [{"prefect.deployments.steps.set_working_directory": {"directory": "/elsewhere"}}], {}, False),
        (ENTRYPOINT, [*THIS_PROJECT, {"prefect.deployments.steps.run_shell_script": {"script": "make"}}], {}, False),
        (ENTRYPOINT, None, {}, False),
        ("../outside/flows.py:f", THIS_PROJECT, {}, False),
        ("tests.support.worker_probe.worker_probe", THIS_PROJECT, {}, False),
        (ENTRYPOINT, THIS_PROJECT, {"command": "python -m prefect.engine"}, False),
    ],
)
def test_only_this_projects_deployments_start_as_forks(
    entrypoint: str, pull_steps: list[dict[str, Any]] | None, job: dict[str, Any], forked: bool
) -> None:
    configuration = ForkedRunConfiguration(**job)
    deployment = DeploymentResponse(
        id=uuid.uuid4(), name="probe", flow_id=uuid.uuid4(), entrypoint=entrypoint, pull_steps=pull_steps, labels={}
    )
    run = FlowRun(flow_id=uuid.uuid4())
    configuration.prepare_for_flow_run(run, deployment)
    assert (configuration.project_flow() is not None) is forked


def _start(worker: Worker, out: Path, hold: bool = False) -> UUID:
    parameters = {"out": str(out), "hold": hold}
    return worker.client.create_flow_run_from_deployment(worker.deployment, parameters=parameters).id


def _final(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait(worker: Worker, run_id: UUID, done: Callable[[FlowRun], bool], what: str) -> FlowRun:
    def measure() -> tuple[bool, Hashable, FlowRun]:
        run = worker.client.read_flow_run(run_id)
        return done(run), run.state_name, run

    return wait_for_progress(measure, stall_seconds=STALL_SECONDS, interval=0.5, what=what)


def _wait_until_running(worker: Worker, run_id: UUID, out: Path) -> int:
    """The pid of the run's process, once the flow has written it."""
    _wait(worker, run_id, lambda r: out.exists() or _final(r), "the probe to start")
    pid: int = json.loads(out.read_text())["pid"]
    return pid


def _wait_for_log(worker: Worker, run_id: UUID, message: str) -> None:
    def measure() -> tuple[bool, Hashable, list[str]]:
        logs = worker.client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        messages = [log.message for log in logs]
        return message in messages, len(messages), messages

    wait_for_progress(measure, stall_seconds=STALL_SECONDS, what="the run's log line in the API")
