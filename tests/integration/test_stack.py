"""`inlet up` for real: every component on 127.0.0.1, a manual deployment run like one from the UI,
`prefect deploy --all` refused there (it would take over the served deployments), and a clean stop on SIGTERM
with no orphan processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from inlet.local import free_port
from tests.support.webhooks import hubspot_delivery

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"inlet up exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def _run_deployment(api: str, parameters: dict[str, Any]) -> dict[str, Any]:
    deployment = httpx.get(f"{api}/deployments/name/full-import/full-import", timeout=10).json()
    for _ in range(10):  # a busy SQLite server answers 503; Prefect's own client retries those too
        answer = httpx.post(
            f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": parameters}, timeout=10
        )
        if answer.status_code != 503:
            break
        time.sleep(1)
    assert answer.status_code == 201, answer.text
    run = answer.json()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()
        if state["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return dict(state)
        time.sleep(0.5)
    raise AssertionError("the deployment run did not finish")


@contextmanager
def _inlet_up(
    tmp_path: Path, **extra_env: str
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], dict[str, str]]]:
    """`inlet up` on free ports; SIGTERM at the end, and it must exit 0."""
    ports = {
        "INLET_PREFECT_PORT": free_port(),
        "INLET_DEMO_APP_PORT": free_port(),
        "INLET_SIMULATOR_PORT": free_port(),
        "INLET_RECEIVER_PORT": free_port(),
        "INLET_TASK_WORKER_PORT": free_port(),
    }
    env = {**os.environ, "INLET_HOME": str(tmp_path / "home"), **{k: str(v) for k, v in ports.items()}, **extra_env}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    up = subprocess.Popen(
        [sys.executable, "-m", "inlet.cli", "up", "--records", "300"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{ports['INLET_PREFECT_PORT']}/api/deployments/name/full-import/full-import", up)
        _wait_for_demo_connection(tmp_path / "home" / "inlet.db")
        yield up, ports, env
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    assert up.returncode == 0


def _wait_for_demo_connection(store: Path) -> None:
    """`inlet up` adds the demo tenant once its components answer; webhooks for it are refused until then."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            if db.execute("SELECT 1 FROM connection WHERE id = 'demo-hubspot'").fetchone():
                return
        time.sleep(0.25)
    raise AssertionError("inlet up never added the demo connection")


@dataclass
class Served:
    """`inlet up` running for this module's tests, its ports and environment."""

    up: subprocess.Popen[bytes]
    ports: dict[str, int]
    env: dict[str, str]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['INLET_PREFECT_PORT']}/api"

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.ports['INLET_DEMO_APP_PORT']}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `inlet up` (task-worker runner) shared by the tests below; the last of them stops it."""
    with _inlet_up(tmp_path_factory.mktemp("up")) as (up, ports, env):
        yield Served(up, ports, env)


def test_inlet_up_serves_a_manual_run_and_applies_a_webhook_on_its_task_worker(served: Served) -> None:
    run = _run_deployment(served.api, {"job": {"tenant": "demo", "connection": "demo-hubspot"}})
    assert run["state"]["type"] == "COMPLETED" and run["name"] == "full-import/demo/demo-hubspot/users"
    assert httpx.get(served.app + "/stats", timeout=10).json()["records"] == 300
    _webhook_reaches_the_app(served.ports, served.app)
    assert _final_states(served.api, "task_runs", "apply-inbox/demo/demo-hubspot") == {"COMPLETED"}


def test_with_the_deployment_runner_a_webhook_starts_an_incremental_import_flow_run(tmp_path: Path) -> None:
    """INLET_INCREMENTAL_RUNNER=deployment: the event's automation runs the incremental-import deployment."""
    with _inlet_up(tmp_path, INLET_INCREMENTAL_RUNNER="deployment") as (up, ports, _env):
        api = f"http://127.0.0.1:{ports['INLET_PREFECT_PORT']}/api"
        _wait_for_automation(api, up)  # serve() registers the trigger after the first deployments
        _webhook_reaches_the_app(ports, f"http://127.0.0.1:{ports['INLET_DEMO_APP_PORT']}")
        assert "COMPLETED" in _final_states(api, "flow_runs", "incremental-import/demo/demo-hubspot")
        assert _final_states(api, "task_runs", "apply-inbox/demo/demo-hubspot") == set()
        body = {"artifacts": {"key": {"any_": ["incremental-import-demo-demo-hubspot-trigger"]}}}
        (link,) = httpx.post(f"{api}/artifacts/filter", json=body, timeout=10).json()
        assert "/events/event/" in link["data"]  # the run links to the event that started it


def _wait_for_automation(api: str, up: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert up.poll() is None, f"inlet up exited with {up.returncode}"
        if httpx.post(f"{api}/automations/filter", json={}, timeout=10).json():
            return
        time.sleep(0.5)
    raise AssertionError("serve() registered no automation for incremental-import")


def _final_states(api: str, kind: str, name: str) -> set[str]:
    """The state types of the runs with this name, once none of them is still scheduled or running."""
    deadline = time.monotonic() + 60
    while True:
        body = {kind: {"name": {"any_": [name]}}}
        states = {run["state"]["type"] for run in httpx.post(f"{api}/{kind}/filter", json=body, timeout=10).json()}
        if not states & {"SCHEDULED", "PENDING", "RUNNING"} or time.monotonic() > deadline:
            return states


def _webhook_reaches_the_app(ports: dict[str, int], app: str) -> None:
    """A signed HubSpot webhook → receiver → inlet.records.changed → incremental-import run → the demo app."""
    from inlet.demo import DEMO_WEBHOOK_SECRET

    sim = f"http://127.0.0.1:{ports['INLET_SIMULATOR_PORT']}"
    created = httpx.post(f"{sim}/_sim/mutate", json={"create": 1}, timeout=10).json()["created"][0]
    url = f"http://127.0.0.1:{ports['INLET_RECEIVER_PORT']}/webhooks/hubspot/demo/demo-hubspot"
    body, headers = hubspot_delivery(url, DEMO_WEBHOOK_SECRET, [("creation", created)])
    answer = httpx.post(url, content=body, headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if any(r["external_id"] == created for r in httpx.get(app + "/records", timeout=10).json()):
            return
        time.sleep(0.25)
    raise AssertionError("the webhook's record did not reach the demo app")


def _deploy_from_prefect_yaml(api: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`prefect deploy --all` from prefect.yaml, as README says, against the server at `api`."""
    prefect = str(Path(sys.executable).parent / "prefect")
    deploy_env = {
        **env,
        "PREFECT_API_URL": api,
        "INLET_PROJECT_DIR": str(ROOT),
        "PREFECT_HOME": env["INLET_HOME"] + "/prefect-cli",
    }
    subprocess.run(
        [prefect, "work-pool", "create", "inlet-process", "--type", "process"],
        cwd=ROOT,
        env=deploy_env,
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all"], cwd=ROOT, env=deploy_env, capture_output=True, text=True
    )


SUMMARY_KEY = "full-import-demo-demo-hubspot-users-summary"


@pytest.mark.needs_chromium
def test_the_flow_run_page_in_a_real_browser_shows_the_run_and_its_artifacts(served: Served, tmp_path: Path) -> None:
    """Headless Chromium renders the Prefect UI's page of a full import: its name, tags and artifacts."""
    from tests.support.browser import capture

    ports, api = served.ports, served.api
    run = _run_deployment(api, {"job": {"tenant": "demo", "connection": "demo-hubspot"}})
    assert run["state"]["type"] == "COMPLETED"
    page = f"http://127.0.0.1:{ports['INLET_PREFECT_PORT']}/runs/flow-run/{run['id']}"
    expected = ["full-import/demo/demo-hubspot/users", "tenant:demo", "connection:demo-hubspot", "Completed"]
    html = _render_until(page, expected)
    for seen in expected:
        assert seen in html, f"{seen!r} is not on the flow run page"
    body = {"artifacts": {"key": {"any_": [SUMMARY_KEY]}, "flow_run_id": {"any_": [run["id"]]}}}
    (artifact,) = httpx.post(f"{api}/artifacts/filter", json=body, timeout=10).json()
    summary_page = f"http://127.0.0.1:{ports['INLET_PREFECT_PORT']}/artifacts/artifact/{artifact['id']}"
    summary = _render_until(summary_page, ["records_seen"])
    for seen in ("full-import/demo/demo-hubspot/users: run summary", "records_seen", "delivered"):
        assert seen in summary, f"{seen!r} is not on the summary artifact's page"
    png = capture(page, tmp_path / "flow-run.png")
    width, height = struct.unpack(">II", png.read_bytes()[16:24])  # the PNG's IHDR chunk
    assert (width, height) == (1440, 1100) and png.stat().st_size > 40_000  # a blank page compresses to a few KB


def test_prefect_deploy_refuses_to_take_over_the_deployments_inlet_up_serves(served: Served) -> None:
    """`prefect deploy --all` against `inlet up`'s server stops at prefect.yaml's build step, before it
    registers anything: the served deployments keep no work pool, so their runs are not split."""
    deployed = _deploy_from_prefect_yaml(served.api, served.env)
    assert deployed.returncode != 0
    assert "from `inlet up` (no work pool)" in deployed.stdout + deployed.stderr
    listed = httpx.post(f"{served.api}/deployments/filter", json={}, timeout=10).json()
    assert {d["name"] for d in listed} >= {"full-import", "deliver-outbox"}
    assert {d["work_pool_name"] for d in listed} == {None}


def test_sigterm_stops_inlet_up_and_every_process_it_started(served: Served) -> None:
    children = psutil.Process(served.up.pid).children(recursive=True)
    assert len(children) >= 5  # Prefect server, simulator, demo app, task worker, receiver, flows
    served.up.send_signal(signal.SIGTERM)
    assert served.up.wait(60) == 0
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def _render_until(url: str, expected: list[str], attempts: int = 3) -> str:
    """The rendered page; again (up to `attempts` times) while a loaded machine left the app half-drawn."""
    from tests.support.browser import rendered_text

    html = ""
    for _ in range(attempts):
        html = rendered_text(url)
        if all(text in html for text in expected):
            break
    return html
