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

The breakdown splits each change's path by the Prefect API's run times (webhook modes): receiver (webhook POST
to 2xx; the inbox commit comes before the answer), hand-off (2xx to the creation of the first run submitted after
it: the debounce window, the Prefect event and `.delay()` or the automation), to start (that run's creation to its
Running state: the server's scheduling and the worker's pick-up) and run (its start to the demo app's commit:
waiting for the connection's turn, opening the run, fetch, apply, delivery). For the runs that applied changes it
also prints where their time went (setup before the first child task, fetch-records, apply-changes, send-to-app,
and the tail after it), and how many changes a run kept warm on the connection applied before their own run
started (no hand-off, no start: `flows.warm`). Prints p50/p95/p99 per mode with the load average at start and
end; paste the table into bench/RESULTS.md.
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

from inlet.demo import DEMO_CONNECTION as CONNECTION  # noqa: E402
from inlet.demo import DEMO_TENANT as TENANT  # noqa: E402
from inlet.local import free_port  # noqa: E402

MODES = ("task-worker", "deployment", "poll")
POLL_SECONDS = 5


@dataclass
class Change:
    external_id: str
    changed: float  # the source confirmed the change (epoch seconds)
    sent: float = 0.0  # webhook POST started
    acked: float = 0.0  # the receiver answered 2xx
    applied: float = 0.0  # the demo app committed the record
    created: float = 0.0  # the first run submitted after the 2xx was created (Prefect's clock)
    run_start: float = 0.0  # that run entered Running
    warm: bool = False  # applied by a run already on the connection (before its own run started)

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


@dataclass
class Span:
    """One task or flow run as the Prefect API reports it (epoch seconds)."""

    id: str
    name: str
    created: float
    start: float
    end: float
    parent: str | None  # the run it ran inside (a task's __parents__ or its flow run)


def _runs(api: str, mode: str, since: float) -> list[Span]:
    """The runs that handled changes and their child tasks, started after `since`."""
    after = {"start_time": {"after_": datetime.fromtimestamp(since).astimezone().isoformat()}}

    def spans(kind: str, names: tuple[str, ...]) -> list[Span]:
        found: list[Span] = []
        for name in names:
            for offset in range(0, 10_000, 200):
                body = {kind: {"name": {"like_": name}, **after}, "limit": 200, "offset": offset}
                answer = httpx.post(f"{api}/{kind}/filter", json=body, timeout=30)
                answer.raise_for_status()
                page = answer.json()
                found.extend(_span(r) for r in page if r["start_time"])
                if len(page) < 200:
                    break
        return sorted(found, key=lambda s: s.created)

    children = ("fetch-records", "apply-changes", "send-to-app")
    if mode == "deployment":
        return spans("flow_runs", ("incremental-import",)) + spans("task_runs", children)
    return spans("task_runs", ("apply-inbox", *children))


def _span(run: dict[str, Any]) -> Span:
    parents = (run.get("task_inputs") or {}).get("__parents__") or []
    parent = parents[0]["id"] if parents else run.get("flow_run_id")
    created, start = _epoch(run["created"]), _epoch(run["start_time"])
    return Span(run["id"], run["name"], created, start, _epoch(run["end_time"]) or start, parent)


def _attribute(changes: list[Change], handlers: list[Span]) -> None:
    """Give each change the first run submitted after its webhook was answered; a change in the app before that
    run started was applied by a run kept warm on the connection (`flows.warm`): no hand-off, no start."""
    for change in changes:
        own = next((run for run in handlers if run.created >= change.sent), None)
        change.warm = own is None or own.start > change.applied
        change.created = change.acked if change.warm or own is None else own.created
        change.run_start = change.acked if change.warm or own is None else own.start


def _run_phases(handlers: list[Span], tasks: list[Span]) -> dict[str, list[float]]:
    """Where the runs that drained the inbox spent their time, by their child tasks."""
    phases: dict[str, list[float]] = {"setup": [], "fetch": [], "apply": [], "send": [], "tail": [], "whole": []}
    by_parent: dict[str, list[Span]] = {}
    for span in tasks:
        by_parent.setdefault(span.parent or "", []).append(span)
    for run in handlers:
        kids = sorted(by_parent.get(run.id, []), key=lambda s: s.start)
        if not kids:
            continue
        phases["setup"].append(kids[0].start - run.start)
        for phase, name in (("fetch", "fetch-records"), ("apply", "apply-changes"), ("send", "send-to-app")):
            phases[phase].append(sum(k.end - k.start for k in kids if k.name.startswith(name)))
        phases["tail"].append(run.end - max(k.end for k in kids))
        phases["whole"].append(run.end - run.start)
    return phases


def _percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def run_mode(mode: str, count: int, interval: float) -> dict[str, Any]:
    """One stack, one mode: a full import, then `count` changes; the per-change figures."""
    from inlet.demo import DEMO_WEBHOOK_SECRET

    loads = {"start": os.getloadavg()[0]}
    home = Path(tempfile.mkdtemp(prefix=f"latency-{mode}-", dir=OUT))
    ports = {name: free_port() for name in ("PREFECT", "DEMO_APP", "SIMULATOR", "RECEIVER", "TASK_WORKER")}
    env = {**os.environ, "INLET_HOME": str(home), **{f"INLET_{k}_PORT": str(v) for k, v in ports.items()}}
    env["INLET_INCREMENTAL_RUNNER"] = "deployment" if mode == "deployment" else "task-worker"
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "1"
    env["INLET_EGRESS__ALLOW_HOSTS"] = '["127.0.0.1"]'  # the simulator listens on loopback
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
        imported = subprocess.run(
            [sys.executable, "-m", "inlet.cli", "import", "full", "-t", TENANT, "-c", CONNECTION],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
        )
        if imported.returncode:
            raise SystemExit(f"the full import failed:\n{imported.stdout.decode()}\n{imported.stderr.decode()}")
        if mode == "poll":
            _schedule_polls(api)
            time.sleep(POLL_SECONDS * 3)  # the scheduler's first runs are under way
        began = time.time()
        changes = _make_changes(sim, hook, DEMO_WEBHOOK_SECRET, count, interval, webhooks=mode != "poll")
        applied = _wait_applied(home / "demo-app.db", changes, timeout=120)
        for change in changes:
            change.applied = applied[change.external_id]
        loads["end"] = os.getloadavg()[0]
        spans = _runs(api, mode, began - 5)
        handlers = [s for s in spans if s.name.startswith(("apply-inbox", "incremental-import"))]
        if mode != "poll":
            _attribute(changes, handlers)
        return {
            "mode": mode,
            "changes": [asdict(c) for c in changes],
            "runs": len(handlers),
            "interval": interval,
            "load": loads,
            "phases": _run_phases(handlers, [s for s in spans if s not in handlers]),
        }
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
    row["load"] = result["load"]
    row["total"] = _percentiles([c.total for c in changes])
    if result["mode"] != "poll":
        row["receiver"] = _percentiles([c.acked - c.sent for c in changes])
        row["hand_off"] = _percentiles([max(0.0, c.created - c.acked) for c in changes])
        row["to_start"] = _percentiles([max(0.0, c.run_start - c.created) for c in changes])
        row["run"] = _percentiles([c.applied - max(c.run_start, c.acked) for c in changes])
    phases = {name: values for name, values in result["phases"].items() if values}
    row["warm"] = sum(1 for c in changes if c.warm)
    row["draining_runs"] = len(phases.get("whole", []))
    row["phases"] = {name: _percentiles(values) for name, values in phases.items() if len(values) > 1}
    return row


def _print(rows: list[dict[str, Any]]) -> None:
    parts = ("total", "receiver", "hand_off", "to_start", "run")
    print(
        "| mode | load (start → end) | changes | runs | " + " | ".join(f"{p} p50 / p95 / p99 (s)" for p in parts) + " |"
    )
    print("|---" * (4 + len(parts)) + "|")
    for row in rows:
        cells = [" / ".join(f"{row[p][q]:.3f}" for q in ("p50", "p95", "p99")) if p in row else "–" for p in parts]
        load = f"{row['load']['start']:.2f} → {row['load']['end']:.2f}"
        print(f"| {row['mode']} | {load} | {row['changes']} | {row['runs']} | " + " | ".join(cells) + " |")
    for row in rows:
        if row["mode"] != "poll":
            print(f"\n{row['mode']}: {row['warm']} of {row['changes']} changes applied by a run kept warm")
        if row["phases"]:
            print(f"\n{row['mode']}: {row['draining_runs']} runs drained the inbox; their phases, p50 / p95 (s):")
            for name, cut in row["phases"].items():
                print(f"  {name:>6}: {cut['p50']:.3f} / {cut['p95']:.3f}")


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
