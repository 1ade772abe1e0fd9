"""`inlet up` for real: every component on 127.0.0.1, a manual deployment run like one from the UI,
`prefect deploy --all` from prefect.yaml, and a clean stop on SIGTERM with no orphan processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from inlet.processes import free_port

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
    run = httpx.post(
        f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": parameters}, timeout=10
    ).json()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()
        if state["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return dict(state)
        time.sleep(0.5)
    raise AssertionError("the deployment run did not finish")


def test_inlet_up_serves_a_manual_run_and_stops_every_process(tmp_path: Path) -> None:
    ports = {
        "INLET_PREFECT_PORT": free_port(),
        "INLET_DEMO_APP_PORT": free_port(),
        "INLET_SIMULATOR_PORT": free_port(),
        "INLET_RECEIVER_PORT": free_port(),
    }
    env = {**os.environ, "INLET_HOME": str(tmp_path / "home"), **{k: str(v) for k, v in ports.items()}}
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
    api = f"http://127.0.0.1:{ports['INLET_PREFECT_PORT']}/api"
    app = f"http://127.0.0.1:{ports['INLET_DEMO_APP_PORT']}"
    try:
        _wait_for(f"{api}/deployments/name/full-import/full-import", up)
        children = psutil.Process(up.pid).children(recursive=True)
        run = _run_deployment(api, {"job": {"tenant": "acme", "connection": "acme-hubspot"}})
        assert run["state"]["type"] == "COMPLETED" and run["name"] == "full-import/acme/acme-hubspot/users"
        assert httpx.get(app + "/stats", timeout=10).json()["records"] == 300
        _webhook_reaches_the_app(ports, app)
        _deploy_from_prefect_yaml(api, env)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    assert up.returncode == 0 and children
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def _webhook_reaches_the_app(ports: dict[str, int], app: str) -> None:
    """A signed HubSpot webhook → receiver → inlet.records.changed → incremental-import run → the demo app."""
    from inlet.demo import DEMO_WEBHOOK_SECRET

    sim = f"http://127.0.0.1:{ports['INLET_SIMULATOR_PORT']}"
    created = httpx.post(f"{sim}/_sim/mutate", json={"create": 1}, timeout=10).json()["created"][0]
    events = [
        {
            "eventId": 1,
            "subscriptionType": "contact.creation",
            "objectId": int(created),
            "portalId": 1,
            "occurredAt": int(time.time() * 1000),
            "attemptNumber": 0,
        }
    ]
    body = orjson.dumps(events)
    url = f"http://127.0.0.1:{ports['INLET_RECEIVER_PORT']}/webhooks/hubspot/acme/acme-hubspot"
    stamp = str(int(time.time() * 1000))
    digest = hmac.new(DEMO_WEBHOOK_SECRET.encode(), b"POST" + url.encode() + body + stamp.encode(), hashlib.sha256)
    headers = {
        "X-HubSpot-Signature-v3": base64.b64encode(digest.digest()).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    answer = httpx.post(url, content=body, headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if any(r["external_id"] == created for r in httpx.get(app + "/records", timeout=10).json()):
            return
        time.sleep(0.25)
    raise AssertionError("the webhook's record did not reach the demo app")


def _deploy_from_prefect_yaml(api: str, env: dict[str, str]) -> None:
    """prefect.yaml deploys on any Prefect server (here: the one `inlet up` started)."""
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
    subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all"], cwd=ROOT, env=deploy_env, check=True, capture_output=True
    )
    names = {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()}
    pools = {d["work_pool_name"] for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()}
    assert {"full-import", "deliver-outbox"} <= names and "inlet-process" in pools
