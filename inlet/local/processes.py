"""Child processes on 127.0.0.1: start one, wait until it answers over HTTP, stop it by its PID.

Each child runs in its own session (so its own process group); stopping sends SIGTERM to that group and
SIGKILL after a grace period. Output goes to a log file whose tail is put into the error when a child fails
to start. `inlet up`, `inlet demo` and the integration tests all start their processes through here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from inlet.errors import ProcessError

__all__ = ["ProcessError", "free_port", "local_client", "process_log", "start_process", "stop_process"]

HOST = "127.0.0.1"

# Processes started by start_process() and not yet stopped; stopped at interpreter exit as a safety net.
_RUNNING: dict[int, subprocess.Popen[bytes]] = {}
_LOGS: dict[int, Path] = {}


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago, from outside the kernel's ephemeral range, and
    never one this process returned before (while the range lasts).

    A port from that range (what binding to port 0 gives) can become any outgoing connection's source port
    before the server that asked for it binds it: under load, with many loopback connections, a test's app then
    failed with "address already in use". Ports below the range are given only to a bind that names them; each
    process walks them in an order of its own, so two processes rarely try the same one, and a port taken is
    skipped."""
    for _ in range(1000):
        port = next(_ports(), None)
        if port is None:  # every port handed out once: start over (those still in use fail to bind)
            _shuffled_ports.clear()
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:  # taken: the next one
                continue
            return port
    raise ProcessError(f"no free TCP port on {HOST} below the ephemeral range")


_FIRST_PORT = 20000  # above the well-known services' ports (PostgreSQL, Redis, Prefect's 4200, ...)
_shuffled_ports: list[Iterator[int]] = []


def _ports() -> Iterator[int]:
    """This process's walk through the ports from _FIRST_PORT to the ephemeral range, in a random order."""
    if not _shuffled_ports:
        low, _ = _ephemeral_range()
        ports = list(range(_FIRST_PORT, max(low, _FIRST_PORT + 1000)))
        random.shuffle(ports)
        _shuffled_ports.append(iter(ports))
    return _shuffled_ports[0]


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections (Linux; elsewhere its default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def local_client(**kwargs: Any) -> httpx.Client:
    """An httpx client for 127.0.0.1 that ignores proxy settings from the environment."""
    kwargs.setdefault("timeout", 30.0)
    return httpx.Client(trust_env=False, **kwargs)


def process_log(proc: subprocess.Popen[bytes], tail: int = 4000) -> str:
    """The last ``tail`` characters of what a process started by start_process() wrote so far."""
    path = _LOGS.get(proc.pid)
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[-tail:]


def start_process(
    cmd: Sequence[str],
    health_url: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    ok: Sequence[int] = (200,),
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session and wait until GET ``health_url`` answers with a status in ``ok``.

    ``env`` is added to the current environment. Output goes to ``log_path`` (default: a new file in the
    temp dir). Raises ProcessError with the log tail if the process exits first or is not ready in time;
    in the latter case the process is stopped first.
    """
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="inlet-real-app-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _RUNNING[proc.pid] = proc
    _LOGS[proc.pid] = log_path

    deadline = time.monotonic() + timeout
    with local_client(timeout=2.0) as client:
        while True:
            code = proc.poll()
            if code is not None:
                _RUNNING.pop(proc.pid, None)
                detail = process_log(proc)
                raise ProcessError(
                    f"{cmd[0]} exited with {code} before {health_url} was ready; log {log_path}:\n{detail}"
                )
            try:
                if client.get(health_url).status_code in ok:
                    return proc
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                stop_process(proc)
                raise ProcessError(
                    f"{health_url} was not ready after {timeout:.0f}s; log {log_path}:\n{process_log(proc)}"
                )
            time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process started by start_process(): SIGTERM to its process group, SIGKILL after ``grace``.

    The group id is the child's PID (start_new_session=True). Signals are only sent while the child is not
    yet reaped, so the PID cannot have been reused by an unrelated process. Safe to call twice.
    """
    _RUNNING.pop(proc.pid, None)
    if proc.poll() is None:  # still running, or a zombie we have not reaped: the PID is still ours
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        # Children the leader left behind in its group (none expected for Kinto or json-server).
        _signal_group(proc.pid, signal.SIGKILL)


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_RUNNING.values()):
        stop_process(proc, grace=5.0)
