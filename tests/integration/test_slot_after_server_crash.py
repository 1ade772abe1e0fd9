"""A connection's slot held when the Prefect server was SIGKILLed frees itself after the restart.

With Prefect's default in-memory lease storage, a server killed while a run held `inlet-connection-<id>` came
back with `active_slots=1` and no lease to expire: every later run of the connection waited 900 s and died.
inlet runs the server with the filesystem lease storage (inlet.local.environment), so the lease survives the
restart, lapses, and the server's repossessor frees the slot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from inlet.local import free_port, prefect_env, start_process, stop_process
from inlet.settings import Settings
from tests.support.progress import wait_for_progress

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HOLD = textwrap.dedent(
    """
    import asyncio, sys
    from flows.single_flight import single_flight

    async def main() -> None:
        async with single_flight(sys.argv[1], lease_seconds=60):
            print("held", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)
TAKE = textwrap.dedent(
    """
    import asyncio, sys
    from flows.single_flight import single_flight

    async def main() -> None:
        async with single_flight(sys.argv[1], lease_seconds=60, wait_seconds=240):
            print("taken", flush=True)

    asyncio.run(main())
    """
)


def _server(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    prefect = str(Path(sys.executable).with_name("prefect"))
    cmd = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)]
    url = f"http://127.0.0.1:{settings.prefect_port}/api/health"
    return start_process(cmd, url, env=env, timeout=240, log_path=log)


def _slot(api: str, name: str) -> dict[str, object]:
    answer = httpx.post(f"{api}/v2/concurrency_limits/filter", json={"limit": 200}, timeout=30).json()
    return next(limit for limit in answer if limit["name"] == name)


def test_a_slot_held_when_the_server_was_killed_frees_itself_after_the_restart(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", prefect_port=free_port())
    settings.prefect_home.mkdir(parents=True)
    api = f"http://127.0.0.1:{settings.prefect_port}/api"
    env = {**prefect_env(settings), "PREFECT_API_URL": api, "PYTHONPATH": str(Path.cwd())}
    env["PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS"] = "5"
    server = _server(settings, env, tmp_path / "server-1.log")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, "crashy"], env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert _slot(api, "inlet-connection-crashy")["active_slots"] == 1
        os.killpg(server.pid, signal.SIGKILL)  # the server dies mid-run, and the run with it
        holder.kill()
        server.wait(timeout=30)
        holder.wait(timeout=30)
        server = _server(settings, env, tmp_path / "server-2.log")
        taker = subprocess.run(
            [sys.executable, "-c", TAKE, "crashy"], env={**os.environ, **env}, capture_output=True, text=True
        )
        assert taker.returncode == 0, taker.stderr[-2000:]
        assert taker.stdout.strip() == "taken"

        def freed() -> tuple[bool, object, object]:
            slot = _slot(api, "inlet-connection-crashy")
            return slot["active_slots"] == 0, slot["active_slots"], slot

        wait_for_progress(freed, stall_seconds=120, what="the slot's release")
    finally:
        holder.kill()
        stop_process(server)
