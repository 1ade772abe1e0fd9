"""Incremental latency: per change, the time from the source change to the record in the team's app.

    .venv/bin/python bench/incremental_latency.py [--changes 60] [--modes task-worker,deployment,poll]

Each mode starts the whole stack of `inlet up` on 127.0.0.1 (Prefect server on SQLite, the HubSpot simulator,
the demo app, the receiver, `serve()` and, for the fast path, a Prefect task worker), runs a full import, then
makes `--changes` records at the source one after another and measures when each lands in the demo app:

- task-worker: a signed HubSpot webhook per change; the receiver stores it in the inbox and submits the
  `apply-inbox` task with `.delay()`; a Prefect task worker runs it at once (INLET_INCREMENTAL_RUNNER=task-worker).
- deployment: the same webhooks; the `inlet.records.changed` event's automation creates an `incremental-import`
  flow run that `serve()` starts in a new process (PREFECT_RUNNER_POLL_FREQUENCY=1).
- poll: no webhooks; poll-changes runs on a 5 s interval schedule and finds the changes (HubSpot search API).

The breakdown splits each change's path by the Prefect API's run times: receiver (webhook POST to 2xx), event to
run start (2xx to the start of the run that applied it), fetch (run start to the end of its fetch-records task) and
delivery (then to the demo app's commit). Prints p50/p95/p99 per mode; paste the table into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"

import httpx  # noqa: E402
import orjson  # noqa: E402

from inlet.local import free_port  # noqa: E402

MODES = ("task-worker", "deployment", "poll")
TENANT, CONNECTION = "acme", "acme-hubspot"
POLL_SECONDS = 5


@dataclass
class Change:
    external_id: str
    changed: float  # the source confirmed the change (epoch seconds)
    sent: float = 0.0  # webhook POST started
    acked: float = 0.0  # the receiver answered 2xx
    applied: float = 0.0  # the demo app committed the record
    run_start: float = 0.0  # the run (task or flow) that applied it started
    fetched: float = 0.0  # that run's fetch-records task ended

    @property
    def total(self) -> float:
        return self.applied - self.changed


def _epoch(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0


def _sign_v3(secret: str, url: str, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time() * 1000))
    digest = hmac.new(secret.encode(), b"POST" + url.encode() + body + stamp.encode(), hashlib.sha256).digest()
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def _applied_times(db: Path, ids: list[str]) -> dict[str, float]:
    """When the demo app committed each record (its own clock), read from its SQLite file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT external_id, updated_at FROM records WHERE external_id IN ({marks})", ids)
        return {external_id: _epoch(updated) for external_id, updated in rows}


def _runs(api: str, mode: str, since: float) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(start, end) of the runs that applied changes, and of their fetch-records tasks, after `since`."""
    after = {"start_time": {"after_": datetime.fromtimestamp(since).astimezone().isoformat()}}

    def spans(kind: str, name: str) -> list[tuple[float, float]]:
        body = {kind: {"name": {"like_": name}, **after}, "limit": 200}
        runs = httpx.post(f"{api}/{kind}/filter", json=body, timeout=30).json()
        return sorted((_epoch(r["start_time"]), _epoch(r["end_time"])) for r in runs if r["start_time"])

    handlers = spans("flow_runs", "incremental-import") if mode == "deployment" else spans("task_runs", "apply-inbox")
    return handlers, spans("task_runs", "fetch-records")


def _attribute(changes: list[Change], handlers: list[tuple[float, float]], fetches: list[tuple[float, float]]) -> None:
    """Give each change the run that applied it: the last run started before the app's commit."""
    for change in changes:
        started = [start for start, _ in handlers if start <= change.applied]
        change.run_start = started[-1] if started else change.acked
        ended = [end for start, end in fetches if change.run_start <= start and end <= change.applied]
        change.fetched = ended[-1] if ended else change.run_start


def _percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def run_mode(mode: str, count: int, interval: float) -> dict[str, Any]:
    """One stack, one mode: a full import, then `count` changes; the per-change figures."""
    from inlet.demo import DEMO_WEBHOOK_SECRET

    home = Path(tempfile.mkdtemp(prefix=f"latency-{mode}-", dir=OUT))
    ports = {name: free_port() for name in ("PREFECT", "DEMO_APP", "SIMULATOR", "RECEIVER", "TASK_WORKER")}
    env = {**os.environ, "INLET_HOME": str(home), **{f"INLET_{k}_PORT": str(v) for k, v in ports.items()}}
    env["INLET_INCREMENTAL_RUNNER"] = "deployment" if mode == "deployment" else "task-worker"
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "1"
    env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "5"
    for name in ("PREFECT_API_URL", "PREFECT_HOME"):
        env.pop(name, None)
    up = subprocess.Popen(
        [sys.executable, "-m", "inlet.cli", "up", "--records", "1000"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{ports['PREFECT']}/api"
    sim = f"http://127.0.0.1:{ports['SIMULATOR']}"
    hook = f"http://127.0.0.1:{ports['RECEIVER']}/webhooks/hubspot/{TENANT}/{CONNECTION}"
    try:
        _wait(f"{api}/deployments/name/poll-changes/poll-changes", up)
        cli_env = {**env, "PREFECT_API_URL": api}
        subprocess.run(
            [sys.executable, "-m", "inlet.cli", "import", "full", "-t", TENANT, "-c", CONNECTION],
            cwd=ROOT,
            env=cli_env,
            check=True,
            capture_output=True,
        )
        if mode == "poll":
            _schedule_polls(api)
            time.sleep(POLL_SECONDS * 3)  # the scheduler's first runs are under way
        began = time.time()
        changes = _make_changes(sim, hook, DEMO_WEBHOOK_SECRET, count, interval, webhooks=mode != "poll")
        applied = _wait_applied(home / "demo-app.db", changes, timeout=120)
        for change in changes:
            change.applied = applied[change.external_id]
        handlers, fetches = _runs(api, mode, began - 5)
        if mode != "poll":
            _attribute(changes, handlers, fetches)
        return {"mode": mode, "changes": [asdict(c) for c in changes], "runs": len(handlers), "interval": interval}
    finally:
        up.terminate()
        up.wait(90)


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"inlet up exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def _schedule_polls(api: str) -> None:
    deployment = httpx.get(f"{api}/deployments/name/poll-changes/poll-changes", timeout=10).json()
    schedule = {"schedule": {"interval": POLL_SECONDS}, "active": True}
    schedule["parameters"] = {"tenant": TENANT, "connection": CONNECTION}
    answer = httpx.post(f"{api}/deployments/{deployment['id']}/schedules", json=[schedule], timeout=10)
    answer.raise_for_status()


def _make_changes(sim: str, hook: str, secret: str, count: int, interval: float, *, webhooks: bool) -> list[Change]:
    """Create records at the source one at a time, each followed by its signed webhook."""
    changes: list[Change] = []
    with httpx.Client(timeout=10) as client:
        for n in range(count):
            created = client.post(f"{sim}/_sim/mutate", json={"create": 1}).json()["created"][0]
            change = Change(created, changed=time.time())
            if webhooks:
                event = {
                    "eventId": n + 1,
                    "subscriptionType": "contact.creation",
                    "objectId": int(created),
                    "portalId": 1,
                    "occurredAt": int(change.changed * 1000),
                    "attemptNumber": 0,
                }
                body = orjson.dumps([event])
                change.sent = time.time()
                answer = client.post(hook, content=body, headers=_sign_v3(secret, hook, body))
                change.acked = time.time()
                answer.raise_for_status()
            changes.append(change)
            time.sleep(interval * random.uniform(0.6, 1.4))
    return changes


def _wait_applied(db: Path, changes: list[Change], timeout: float) -> dict[str, float]:
    ids = [c.external_id for c in changes]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        applied = _applied_times(db, ids)
        if len(applied) == len(ids):
            return applied
        time.sleep(0.2)
    raise SystemExit(f"{len(ids) - len(_applied_times(db, ids))} of {len(ids)} changes never reached the app")


def report(result: dict[str, Any]) -> dict[str, Any]:
    changes = [Change(**c) for c in result["changes"]]
    row: dict[str, Any] = {"mode": result["mode"], "changes": len(changes), "runs": result["runs"]}
    row["total"] = _percentiles([c.total for c in changes])
    if result["mode"] != "poll":
        row["receiver"] = _percentiles([c.acked - c.sent for c in changes])
        row["event_to_start"] = _percentiles([max(0.0, c.run_start - c.acked) for c in changes])
        row["fetch"] = _percentiles([max(0.0, c.fetched - max(c.run_start, c.acked)) for c in changes])
        row["delivery"] = _percentiles([c.applied - max(c.fetched, c.acked) for c in changes])
    return row


def _print(rows: list[dict[str, Any]]) -> None:
    parts = ("total", "receiver", "event_to_start", "fetch", "delivery")
    print("| mode | changes | runs | " + " | ".join(f"{p} p50 / p95 / p99 (s)" for p in parts) + " |")
    print("|---" * (3 + len(parts)) + "|")
    for row in rows:
        cells = [" / ".join(f"{row[p][q]:.3f}" for q in ("p50", "p95", "p99")) if p in row else "–" for p in parts]
        print(f"| {row['mode']} | {row['changes']} | {row['runs']} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.5, help="mean seconds between two source changes")
    parser.add_argument("--modes", default=",".join(MODES))
    options = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for mode in options.modes.split(","):
        result = run_mode(mode, options.changes, options.interval)
        (OUT / f"latency-{mode}.json").write_bytes(orjson.dumps(result))
        rows.append(report(result))
        print(json.dumps(rows[-1]), flush=True)
    _print(rows)


if __name__ == "__main__":
    main()
