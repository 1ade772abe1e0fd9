"""The embedded default as running processes: Prefect server, demo source, demo app and, when the stack stays
up, the task worker, the webhook receiver and the flow server.

Every process binds 127.0.0.1, runs in its own process group and is stopped by its PID. A component
already answering on its port (say, from an earlier `inlet up`) is reused, not started twice.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from inlet.errors import ProcessError
from inlet.local.environment import local_api_url, prefect_env
from inlet.local.processes import start_process, stop_process
from inlet.settings import Settings

__all__ = ["DEMO_TOKEN", "Stack", "start_stack", "wait_for_signal"]

DEMO_TOKEN = "pat-na1-inlet-demo"  # the demo simulator's token; not a secret of any real account


@dataclass
class Stack:
    """The processes this command started (and must stop) and the URLs of every component."""

    settings: Settings
    urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop what this command started, newest first."""
        for name in reversed(list(self.processes)):
            stop_process(self.processes.pop(name), grace=15.0)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _child_env(settings: Settings) -> dict[str, str]:
    env = prefect_env(settings)
    env["INLET_HOME"] = str(settings.home.resolve())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))
    return env


def start_stack(settings: Settings, *, simulator_records: int, serve_flows: bool) -> Stack:
    """Start (or reuse) every component; on a failure, stop what was started and re-raise."""
    stack = Stack(settings)
    logs = settings.home / "logs"
    env = _child_env(settings)
    secret = settings.destination_secret()
    try:
        _component(
            stack,
            "prefect",
            local_api_url(settings) + "/health",
            logs,
            env,
            timeout=180,
            cmd=[_script("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)],
        )
        stack.urls["prefect"] = f"http://127.0.0.1:{settings.prefect_port}"
        sim = f"http://127.0.0.1:{settings.simulator_port}"
        _component(
            stack,
            "simulator",
            sim + "/_sim/stats",
            logs,
            env,
            cmd=[
                sys.executable,
                "-m",
                "connectors.hubspot.simulator",
                "--port",
                str(settings.simulator_port),
                "--records",
                str(simulator_records),
                "--token",
                DEMO_TOKEN,
            ],
        )
        stack.urls["simulator"] = sim
        app = f"http://127.0.0.1:{settings.demo_app_port}"
        app_env = {**env, "INLET_DEMO_APP_SECRET": secret.get_secret_value() if secret else ""}
        _component(
            stack,
            "demo-app",
            app + "/health",
            logs,
            app_env,
            cmd=[
                sys.executable,
                "-m",
                "inlet.demo.app",
                "--port",
                str(settings.demo_app_port),
                "--db",
                str(settings.home.resolve() / "demo-app.db"),
            ],
        )
        stack.urls["demo-app"] = app
        if serve_flows:
            flow_env = {**env, "PREFECT_API_URL": local_api_url(settings), "INLET_INCREMENTAL_RUNNER": _runner()}
            if flow_env["INLET_INCREMENTAL_RUNNER"] == "task-worker":
                port = str(settings.task_worker_port)
                _component(
                    stack,
                    "task-worker",
                    f"http://127.0.0.1:{port}/status",
                    logs,
                    flow_env,
                    cmd=[sys.executable, "-m", "flows.task_worker", "--status-port", port],
                )
                stack.urls["task-worker"] = f"http://127.0.0.1:{port}"
            receiver = f"http://127.0.0.1:{settings.receiver_port}"
            _component(
                stack,
                "receiver",
                receiver + "/health",
                logs,
                flow_env,
                cmd=[sys.executable, "-m", "inlet.cli", "serve", "--port", str(settings.receiver_port)],
            )
            stack.urls["receiver"] = receiver
            served = local_api_url(settings) + "/deployments/name/full-import/full-import"
            _component(
                stack,
                "flows",
                served,
                logs,
                flow_env,
                cmd=[sys.executable, "-m", "flows.serve"],
                timeout=120,
            )
    except BaseException:
        stack.stop()
        raise
    return stack


def _runner() -> str:
    """`inlet up` applies changes on a task worker (sub-second) unless INLET_INCREMENTAL_RUNNER says otherwise."""
    return os.environ.get("INLET_INCREMENTAL_RUNNER", "task-worker")


def _component(
    stack: Stack, name: str, health: str, logs: Path, env: dict[str, str], *, cmd: list[str], timeout: float = 60
) -> None:
    if _answers(health):
        return
    port = urlsplit(health).port
    if name in _PORT_SETTINGS and port is not None and _taken(port):  # the flow server has no port of its own
        raise ProcessError(
            f"port {port} on 127.0.0.1 is taken by another program, so the {name} cannot start there: "
            f"stop that program or choose another port with {_PORT_SETTINGS[name]}"
        )
    stack.processes[name] = start_process(cmd, health, env=env, timeout=timeout, log_path=logs / f"{name}.log")


_PORT_SETTINGS = {
    "prefect": "INLET_PREFECT_PORT",
    "simulator": "INLET_SIMULATOR_PORT",
    "demo-app": "INLET_DEMO_APP_PORT",
    "task-worker": "INLET_TASK_WORKER_PORT",
    "receiver": "INLET_RECEIVER_PORT",
}


def _taken(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (a bind fails) although the component's health check did not
    answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _script(name: str) -> str:
    """An executable installed next to this interpreter (the virtualenv's bin/)."""
    return str(Path(sys.executable).parent / name)


def wait_for_signal() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
