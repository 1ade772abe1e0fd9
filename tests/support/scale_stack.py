"""The scale-out deployment of docs/scale-out.md as real processes, for the scale-out test.

A Prefect server on PostgreSQL, the `inlet-process` work pool and the full-import and incremental-import deployments
of prefect.yaml (created with the Prefect CLI, as an operator would, with the trigger), N process workers for flow
runs (inlet's, `python -m flows.worker`: each run a fork of a preloaded server), N task workers, two webhook
receivers (one per incremental runner: `task-worker` submits `apply-inbox` to the task workers, `deployment` lets
the trigger start `incremental-import` flow runs on the process workers) and the demo app; the inlet store is a
PostgreSQL database too. Every process binds 127.0.0.1 and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from cryptography.fernet import Fernet

from inlet.local import free_port, start_process, stop_process

__all__ = ["ScaleStack", "scale_stack"]

ROOT = Path(__file__).resolve().parents[2]
POOL = "inlet-process"
APP_SECRET = "whsec_" + "c2NhbGUtb3V0LXRlc3Qtc2lnbmluZy1zZWNyZXQ="  # a test secret, base64 of a phrase


@dataclass
class ScaleStack:
    """URLs, the environment every inlet process shares, each process worker's log, each task worker's status."""

    api: str
    receivers: dict[str, str]  # incremental runner -> the receiver's URL
    app: str
    env: dict[str, str]
    worker_logs: dict[str, Path] = field(default_factory=dict)
    task_workers: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each component has used so far: its own, its live descendants' (a process
        worker's fork server) and their finished children's (the flow runs)."""
        used = {}
        for name, proc in self.processes.items():
            root = psutil.Process(proc.pid)
            total = 0.0
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = process.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
            used[name] = round(total, 1)
        return used


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@contextmanager
def scale_stack(home: Path, prefect_database: str, store_database: str, workers: int = 2) -> Iterator[ScaleStack]:
    """Start everything; stop it all, newest first, when the block ends."""
    api_port, app_port = free_port(), free_port()
    receivers = {runner: f"http://127.0.0.1:{free_port()}" for runner in ("task-worker", "deployment")}
    api = f"http://127.0.0.1:{api_port}/api"
    env = {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "connectors,mappings,inlet",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",  # the test reads the workers' submissions from their logs
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "INLET_HOME": str(home / "inlet"),
        "INLET_PROJECT_DIR": str(ROOT),
        "INLET_DATABASE_URL": store_database,
        "INLET_SECRET_KEY": Fernet.generate_key().decode(),
        "INLET_DESTINATION__URL": f"http://127.0.0.1:{app_port}",
        "INLET_DESTINATION__SECRET": APP_SECRET,
        "INLET_INCREMENTAL_RUNNER": "task-worker",
        "INLET_EGRESS__ALLOW_HOSTS": '["127.0.0.1"]',  # the simulators listen on loopback
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    logs = home / "logs"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with ExitStack() as stack:

        def start(name: str, cmd: list[str], health: str, extra: dict[str, str] | None = None) -> None:
            proc = start_process(
                cmd, health, cwd=ROOT, env={**env, **(extra or {})}, timeout=180, log_path=logs / f"{name}.log"
            )
            stack.callback(stop_process, proc, 15.0)
            processes[name] = proc

        server_env = {"PREFECT_API_DATABASE_CONNECTION_URL": prefect_database.replace("+psycopg", "+asyncpg")}
        start(
            "prefect-server",
            [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
            api + "/health",
            server_env,
        )
        _prefect_cli(env, logs, "work-pool", "create", POOL, "--type", "process")
        _prefect_cli(env, logs, "--no-prompt", "deploy", "--name", "full-import", "--name", "incremental-import")
        scale = ScaleStack(api, receivers, f"http://127.0.0.1:{app_port}", env, processes=processes)
        for n in range(1, workers + 1):
            name, port = f"scale-worker-{n}", free_port()
            start(
                name,
                [
                    sys.executable,
                    "-m",
                    "flows.worker",
                    "--pool",
                    POOL,
                    "--name",
                    name,
                    "--limit",
                    "2",
                    "--with-healthcheck",
                ],
                f"http://127.0.0.1:{port}/health",
                {"PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1", "PREFECT_WORKER_WEBSERVER_PORT": str(port)},
            )
            scale.worker_logs[name] = logs / f"{name}.log"
        for n in range(1, workers + 1):
            name, status = f"task-worker-{n}", f"http://127.0.0.1:{(port := free_port())}/status"
            start(name, [sys.executable, "-m", "flows.task_worker", "--status-port", str(port)], status)
            scale.task_workers[name] = status
        start(
            "demo-app",
            [sys.executable, "-m", "inlet.demo.app", "--port", str(app_port), "--db", str(home / "demo-app.db")],
            scale.app + "/health",
            {"INLET_DEMO_APP_SECRET": APP_SECRET},
        )
        for runner, url in receivers.items():
            start(
                f"receiver-{runner}",
                [sys.executable, "-m", "inlet.cli", "serve", "--port", url.rsplit(":", 1)[1]],
                url + "/health",
                {"INLET_INCREMENTAL_RUNNER": runner},
            )
        yield scale


def _prefect_cli(env: dict[str, str], logs: Path, *args: str) -> None:
    done = subprocess.run(
        [_bin("prefect"), *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=180
    )
    (logs / "prefect-cli.log").open("a").write(f"$ prefect {' '.join(args)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
