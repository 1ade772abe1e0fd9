"""A process worker whose flow runs start as forks of a server that already imported Prefect and inlet's flows.

    python -m flows.worker --pool inlet-process [--name NAME] [--limit N] [--with-healthcheck]

takes `prefect worker start`'s options and runs Prefect's own command with this worker class, so the pool,
polling, heartbeats, health check and signal handling are Prefect's. Prefect's process worker starts every run
as `python -m prefect.engine`: a fresh interpreter that imports Prefect and the flow before the run does
anything, about 1.75 of a small run's 3.4 CPU-seconds (docs/scale-out.md). Here a run whose flow is this
project's starts as a fork of a `forkserver` preloaded with prefect.yaml's flow modules (flows/forked_runs.py,
as `serve` does), through `run_flow_in_subprocess`: a process of its own with its own pid, in the project
directory, with the job's environment, its logs sent to the API by its own handler and its output on the
worker's.

Where it overrides Prefect: `InletProcessWorker.run` replaces `ProcessWorker.run`'s process starter, and only
that. The run still goes through Prefect's `FlowRunExecutorContext` (`prefect.runner._flow_run_executor`, a
private module: the one the process worker itself uses), which proposes Crashed for a process that dies
without a final state, and whose cancellation observer kills the run's process when the run is cancelled
from the UI. `ForkedRunConfiguration.prepare_for_flow_run` keeps the deployment the worker already read, so
the run neither reads it again nor runs its pull step: the worker loads the flow, by module name. It reads
`ProcessJobConfiguration._command_configured`, Prefect's private record of a job that sets its own `command`,
to leave such a job to Prefect's path.

A run is this project's when its deployment's only pull step sets the working directory to this project (as
prefect.yaml's does with `INLET_PROJECT_DIR`) and its entrypoint is a `path.py:flow` inside it. Any other run
(another project's, a job with its own `command`, a run without a deployment) takes Prefect's own path
unchanged. Of the process job's variables, a fork honours `env`; `working_dir` is the pull step's directory in
either path, and a fork's output always goes to the worker's (`stream_output`). Code is read when the worker
starts: restart the workers after a deploy, as one restarts `serve`.

The work pool's type stays "process": the server would take any type name, but `prefect work-pool create`
accepts only the types of installed worker packages, Prefect's process worker can then serve the same pool
(a fleet can mix both) and the pool keeps the process job template and variables, which are this worker's
too. Only the worker's key in Prefect's registry of worker classes is its own ("inlet-process"), so that
importing this module does not replace Prefect's process worker in that registry.
"""

from __future__ import annotations

import contextlib
import os
import sys
from multiprocessing import forkserver
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import anyio.abc
import prefect.cli
import prefect.flow_engine
import yaml
from prefect import Flow
from prefect.client.schemas.objects import Flow as APIFlow
from prefect.client.schemas.objects import FlowRun, WorkPool
from prefect.client.schemas.responses import DeploymentResponse
from prefect.flows import load_flow_from_entrypoint
from prefect.runner._control_channel import ControlChannel
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult
from pydantic import PrivateAttr

from flows.forked_runs import start_runs_from_a_fork_server

__all__ = ["PROJECT", "ForkedRunConfiguration", "InletProcessWorker", "main", "preloaded_modules"]

PROJECT = Path(__file__).resolve().parents[1]  # the checkout whose flows/ this is
_SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory"


class ForkedRunConfiguration(ProcessJobConfiguration):
    """Prefect's process job configuration, keeping the deployment the worker read to prepare it."""

    _deployment: DeploymentResponse | None = PrivateAttr(default=None)

    def prepare_for_flow_run(
        self,
        flow_run: FlowRun,
        deployment: DeploymentResponse | None = None,
        flow: APIFlow | None = None,
        work_pool: WorkPool | None = None,
        worker_name: str | None = None,
        worker_id: UUID | None = None,
    ) -> None:
        super().prepare_for_flow_run(flow_run, deployment, flow, work_pool, worker_name, worker_id=worker_id)
        self._deployment = deployment

    def project_flow(self) -> Flow[..., Any] | None:
        """The flow this run's deployment names, if it is this project's (module docstring); else None."""
        deployment = self._deployment
        if self._command_configured or deployment is None or deployment.entrypoint is None:
            return None
        path, _, name = deployment.entrypoint.partition(":")
        if not (path.endswith(".py") and name) or not _pulls_this_project(deployment.pull_steps):
            return None
        source = (PROJECT / path).resolve()
        if not source.is_file() or not source.is_relative_to(PROJECT):
            return None
        module = ".".join(source.relative_to(PROJECT).with_suffix("").parts)
        # imported by module name, as the fork server preloads it and as the flow pickles (flows/forked_runs.py)
        return load_flow_from_entrypoint(f"{module}.{name}", use_placeholder_flow=False)


class InletProcessWorker(ProcessWorker):
    """Prefect's process worker, starting a run of this project's flows as a fork of the preloaded server."""

    type = "process"
    job_configuration = ForkedRunConfiguration

    @classmethod
    def __dispatch_key__(cls) -> str:
        return "inlet-process"

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        flow = None
        if isinstance(configuration, ForkedRunConfiguration):  # a module's first import blocks: not on the loop
            flow = await anyio.to_thread.run_sync(configuration.project_flow)
        if flow is None:
            return await super().run(flow_run, configuration, task_status)
        self.get_flow_run_logger(flow_run).info("Starting the run as a fork of the worker's fork server")
        execution = await _execute(flow_run, flow, configuration.env, task_status or anyio.TASK_STATUS_IGNORED)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))


async def _execute(
    flow_run: FlowRun, flow: Flow[..., Any], env: dict[str, str | None], task_status: anyio.abc.TaskStatus[int]
) -> FlowRunExecutionResult | None:
    """`ProcessWorker.run`'s execution, with the fork starter in place of the engine command's."""
    execution: FlowRunExecutionResult | None = None

    async def resolve_flow(_: FlowRun) -> Flow[..., Any]:
        return flow

    async with FlowRunExecutorContext() as ctx:
        starter = _ForkStarter(flow, env, ctx.control_channel)
        executor = ctx.create_executor(flow_run, starter, resolve_flow=resolve_flow, propose_submitting=False)

        async def submit(*, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED) -> None:
            nonlocal execution
            execution = await executor.submit(task_status=task_status)

        async with anyio.create_task_group() as task_group:
            handle = await task_group.start(submit)
            if handle.pid is None:
                raise RuntimeError("Flow run process has no PID")
            task_status.started(handle.pid)
    return execution


class _ForkStarter:
    """Prefect's `DirectSubprocessStarter` (how the runner starts a flow it holds: `run_flow_in_subprocess`, which
    the fork server answers), passing the job's environment: that starter passes only its own variables."""

    def __init__(self, flow: Flow[..., Any], env: dict[str, str | None], control_channel: ControlChannel) -> None:
        self._flow, self._env, self._control_channel = flow, env, control_channel

    async def start(
        self, flow_run: FlowRun, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        env = dict(self._env)
        registered = False
        with contextlib.suppress(RuntimeError):  # no loopback listener: cancellation falls back to a kill
            port, token = self._control_channel.register(flow_run.id)
            env |= {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
            registered = True
        try:
            process = prefect.flow_engine.run_flow_in_subprocess(self._flow, flow_run=flow_run, env=env)
        except BaseException:
            if registered:
                self._control_channel.unregister(flow_run.id)
            raise
        task_status.started(ProcessHandle(process))
        await anyio.to_thread.run_sync(process.join)


def _pulls_this_project(pull_steps: list[dict[str, Any]] | None) -> bool:
    """True when the deployment's only pull step sets the working directory to this project."""
    if not pull_steps or len(pull_steps) != 1 or set(pull_steps[0]) != {_SET_WORKING_DIRECTORY}:
        return False
    directory = pull_steps[0][_SET_WORKING_DIRECTORY].get("directory")
    return isinstance(directory, str) and Path(directory).resolve() == PROJECT


def preloaded_modules(project_yaml: Path = PROJECT / "prefect.yaml") -> list[str]:
    """The modules of prefect.yaml's entrypoints (`flows/x.py:f` is `flows.x`), which the fork server imports."""
    specs = yaml.safe_load(project_yaml.read_text())["deployments"]
    return sorted({spec["entrypoint"].partition(":")[0].removesuffix(".py").replace("/", ".") for spec in specs})


def main(argv: list[str] | None = None) -> None:
    """Start the fork server (it imports the flows now, not at the first run), then run `prefect worker start`
    with `argv` and this worker's class."""
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("--type", "-t") or arg.startswith("--type=") for arg in args):
        raise SystemExit("flows.worker: the worker's type is its own (a pool of type 'process'); drop --type")
    # a fork starts in the working directory its parent has when it asks for it (multiprocessing sends it to the
    # fork server): the project, where the deployment's pull step would put the run. Prefect's own path, for other
    # runs, starts them in a directory of their own whatever this one is.
    os.chdir(PROJECT)
    start_runs_from_a_fork_server(preloaded_modules())
    forkserver.ensure_running()
    sys.argv = ["prefect", "worker", "start", *args, "--type", InletProcessWorker.__dispatch_key__()]
    prefect.cli.app()


if __name__ == "__main__":
    main()
