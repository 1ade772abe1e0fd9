"""Sync at scale: many connections kept up to date by the one scheduler, with random changes in the sources.

    .venv/bin/python bench/sync_scale.py                                   # 1,000 connections, 300 s, 15 min
    nice .venv/bin/python bench/sync_scale.py --connections 100 --minutes 3 --poll-seconds 60   # a small check

Everything runs as `inlet up` runs it, on 127.0.0.1 under bench/out/sync_scale: a Prefect server (SQLite),
the demo app, `python -m flows.serve` (prefect.yaml's deployments: `sync-scheduler` every 20 s, deliver-outbox)
and one Prefect task worker (`python -m flows.task_worker`), which runs each due connection's `sync-connection`
task (its full import, then its polls). The sources are simulators of several apps (HubSpot and Pipedrive,
`--sims` processes of each, `--records` records each); connection i reads simulator i mod sims, ten
connections per tenant, each with the given poll interval.

1. Warm-up: the scheduler imports every new connection (no prefect.yaml edit); wait until all are imported.
2. Quiet phase (the first third of `--minutes`): no source changes. CPU per no-change poll = the CPU of inlet
   (serve and its flow-run children, the task worker) plus the Prefect server in the phase, over the polls
   started in it (the scheduler ticks and deliver-outbox are in the numerator: they are what polling costs).
3. Change phase (the rest): `--changes-per-minute` updates of random records in random simulators. Each
   change's lag, per connection reading that simulator, is the demo app's commit time minus the change time;
   after the phase the bench waits up to one poll interval + 60 s for the last ones (missing: reported).

On time: a poll started within its interval + 30 s of the connection's previous poll (or import). Share of the
machine: that CPU over wall time x cores. Prints a JSON result and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "sync_scale"
APPS = ("hubspot", "pipedrive")
TOKEN = "bench-token-0a1b"
PER_TENANT = 10

import httpx  # noqa: E402
import psutil  # noqa: E402
from pydantic import SecretStr  # noqa: E402


def main() -> None:
    args = _parse()
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "tmp").mkdir(parents=True)
    env = _environment()
    os.environ.update(env)
    from inlet.local import free_port, prefect_env, start_process, stop_process
    from inlet.service import initialise
    from inlet.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    initialise(settings)
    secret = settings.destination_secret()
    assert secret is not None
    child_env = {**env, **prefect_env(settings), "PREFECT_API_URL": f"http://127.0.0.1:{settings.prefect_port}/api"}
    os.environ.update(child_env)
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        started["prefect"] = start_process(
            [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1"],
            f"http://127.0.0.1:{settings.prefect_port}/api/health",
            env=child_env,
            log_path=OUT / "prefect.log",
            timeout=240,
        )
        app_port = int(env["INLET_DESTINATION__URL"].rsplit(":", 1)[1])
        started["app"] = start_process(
            [sys.executable, "-m", "inlet.demo.app", "--port", str(app_port), "--db", str(OUT / "app.db")],
            f"http://127.0.0.1:{app_port}/health",
            env={"INLET_DEMO_APP_SECRET": secret.get_secret_value()},
            log_path=OUT / "app.log",
        )
        sims: list[tuple[str, str]] = []
        for n in range(args.sims):
            for app in APPS:
                port = free_port()
                command = [sys.executable, "-m", f"connectors.{app}.simulator", "--port", str(port)]
                command += ["--records", str(args.records), "--token", TOKEN, "--seed", str(n), "--deliver-every", "0"]
                url = f"http://127.0.0.1:{port}"
                started[f"{app}-{n}"] = start_process(command, url + "/_sim/stats", log_path=OUT / f"{app}-{n}.log")
                sims.append((app, url))
        connections = _add_connections(settings, sims, args)
        inlet_env = {**child_env, "PYTHONPATH": str(ROOT)}
        started["serve"] = _start([sys.executable, "-m", "flows.serve"], inlet_env, "serve")
        status = free_port()
        worker = [sys.executable, "-m", "flows.task_worker", "--limit", str(args.worker_limit)]
        started["worker"] = start_process(
            [*worker, "--status-port", str(status)],
            f"http://127.0.0.1:{status}/status",
            env=inlet_env,
            log_path=OUT / "worker.log",
            timeout=120,
        )
        result = _measure(args, settings, sims, connections, started)
    finally:
        for proc in reversed(list(started.values())):
            stop_process(proc)
    result["load_average_end"] = os.getloadavg()
    (OUT / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _start(command: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """A process with no health URL (`serve` polls the server), in its own session as stop_process wants."""
    with (OUT / f"{name}.log").open("wb") as log:
        env = {**os.environ, **env}
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )


def _environment() -> dict[str, str]:
    from inlet.local import free_port

    return {
        "INLET_HOME": str(OUT / "home"),
        "INLET_PREFECT_PORT": str(free_port()),
        "INLET_DESTINATION__URL": f"http://127.0.0.1:{free_port()}",
        "INLET_EGRESS__ALLOW_HOSTS": '["127.0.0.1"]',
        "TMPDIR": str(OUT / "tmp"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def _add_connections(settings: Any, sims: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, int]:
    """connection id -> simulator index; every policy with the bench's poll interval."""
    from inlet.store import Vault, add_connection, add_tenant, ensure_policies, open_store, set_intervals

    engine = open_store(settings.store_url)
    vault = Vault.from_settings(settings)
    found: dict[str, int] = {}
    for i in range(args.connections):
        tenant, connection, sim = f"t{i // PER_TENANT:04d}", f"c{i:05d}", i % len(sims)
        if i % PER_TENANT == 0:
            add_tenant(engine, tenant)
        app, url = sims[sim]
        secret = {"token": SecretStr(TOKEN)} if app == "hubspot" else {"api_token": SecretStr(TOKEN)}
        add_connection(
            engine,
            vault,
            tenant_id=tenant,
            connection_id=connection,
            app=app,
            parameters={"base_url": url},
            credentials=secret,
        )
        found[connection] = sim
    ensure_policies(engine)
    for i, connection in enumerate(found):
        set_intervals(
            engine, f"t{i // PER_TENANT:04d}", connection, poll_seconds=args.poll_seconds, reconcile_seconds=86_400 * 30
        )
    return found


def _measure(
    args: argparse.Namespace,
    settings: Any,
    sims: list[tuple[str, str]],
    connections: dict[str, int],
    started: dict[str, subprocess.Popen[bytes]],
) -> dict[str, Any]:
    from inlet.store import open_store

    engine = open_store(settings.store_url)
    load_start = os.getloadavg()
    warm = time.time()
    while (imported := _imported(engine)) < len(connections):
        _alive(started)
        if time.time() - warm > args.warm_up_minutes * 60:
            raise SystemExit(f"only {imported} of {len(connections)} connections imported in the warm-up: too slow")
        print(f"warm-up: {imported}/{len(connections)} imported after {time.time() - warm:.0f} s", flush=True)
        time.sleep(10)
    warm_seconds = time.time() - warm
    measured = [started[name] for name in ("prefect", "serve", "worker")]
    quiet_seconds = args.minutes * 60 / 3
    t0, cpu0 = time.time(), _cpu(measured)
    time.sleep(quiet_seconds)
    t1, cpu1 = time.time(), _cpu(measured)
    changes: list[tuple[int, str, float]] = []
    end = t1 + args.minutes * 60 - quiet_seconds
    while time.time() < end:
        _alive(started)
        sim = random.randrange(len(sims))
        answer = httpx.post(f"{sims[sim][1]}/_sim/mutate", json={"update": 1}, timeout=30).json()
        changes += [(sim, str(i), time.time()) for i in answer["updated"]]
        time.sleep(60 / args.changes_per_minute)
    t2, cpu2 = time.time(), _cpu(measured)
    lags, missing = _lags(changes, connections, deadline=time.time() + args.poll_seconds + 60)
    polls = asyncio.run(_task_runs("poll/"))
    imports = asyncio.run(_task_runs("import/"))
    quiet_polls = sum(1 for _, start in polls if t0 <= start < t1)
    window_polls = [(c, s) for c, s in polls if t0 <= s < t2]
    cores = psutil.cpu_count() or 1
    return {
        "connections": len(connections),
        "simulators": {app: args.sims for app in APPS},
        "records_per_simulator": args.records,
        "poll_seconds": args.poll_seconds,
        "minutes": args.minutes,
        "warm_up_seconds": round(warm_seconds, 1),
        "quiet_seconds": round(t1 - t0, 1),
        "quiet_polls": quiet_polls,
        "cpu_quiet_seconds": [round(b - a, 1) for a, b in zip(cpu0, cpu1, strict=True)],
        "cpu_per_no_change_poll": round((sum(cpu1) - sum(cpu0)) / quiet_polls, 2) if quiet_polls else None,
        "polls_in_window": len(window_polls),
        "on_time_share": _on_time(window_polls, polls, imports, args.poll_seconds + 30),
        "changes": len(changes),
        "lag_samples": len(lags),
        "lag_missing": missing,
        "lag_p50_seconds": round(statistics.median(lags), 1) if lags else None,
        "lag_p99_seconds": round(statistics.quantiles(lags, n=100)[98], 1) if len(lags) >= 2 else None,
        "machine_share": round((sum(cpu2) - sum(cpu0)) / ((t2 - t0) * cores), 3),
        "cores": cores,
        "load_average_start": load_start,
    }


def _imported(engine: Any) -> int:
    from sqlmodel import Session, col, func, select

    from inlet.store import SyncPolicy

    with Session(engine) as session:
        return int(session.exec(select(func.count()).where(col(SyncPolicy.imported_at).is_not(None))).one())


def _alive(started: dict[str, subprocess.Popen[bytes]]) -> None:
    dead = [name for name, proc in started.items() if proc.poll() is not None]
    if dead:
        raise SystemExit(f"stopped early: {dead} (logs in {OUT})")


def _cpu(processes: list[subprocess.Popen[bytes]]) -> list[float]:
    """User+system CPU of each process, its ended children (waited for) and its living ones."""

    def of(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        living = sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
        return float(times.user + times.system + times.children_user + times.children_system + living)

    return [of(psutil.Process(p.pid)) for p in processes]


def _lags(
    changes: list[tuple[int, str, float]], connections: dict[str, int], deadline: float
) -> tuple[list[float], int]:
    """Per (change, connection reading its simulator): seconds until the demo app committed it."""
    wanted = [(c, external_id, at) for sim, external_id, at in changes for c, s in connections.items() if s == sim]
    while True:
        with sqlite3.connect(f"file:{OUT / 'app.db'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT connection, external_id, updated_at FROM records").fetchall()
        applied = {(c, e): datetime.fromisoformat(u).timestamp() for c, e, u in rows}
        lags = [applied[(c, e)] - at for c, e, at in wanted if applied.get((c, e), 0.0) >= at]
        if len(lags) == len(wanted) or time.time() > deadline:
            return lags, len(wanted) - len(lags)
        time.sleep(5)


async def _task_runs(prefix: str) -> list[tuple[str, float]]:
    """(connection, start time) of every started sync-connection task run whose name starts with `prefix`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    found: list[tuple[str, float]] = []
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_task_runs(
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=prefix)), limit=200, offset=offset
            )
            found += [(r.name.rsplit("/", 1)[-1], r.start_time.timestamp()) for r in page if r.start_time is not None]
            if len(page) < 200:
                return found
            offset += 200


def _on_time(
    window: list[tuple[str, float]], polls: list[tuple[str, float]], imports: list[tuple[str, float]], bound: float
) -> float | None:
    """The share of the window's polls that started within `bound` s of the connection's previous poll or import."""
    before: dict[str, list[float]] = {}
    for connection, start in [*polls, *imports]:
        before.setdefault(connection, []).append(start)
    on_time = 0
    for connection, start in window:
        earlier = [s for s in before[connection] if s < start]
        on_time += bool(earlier) and start - max(earlier) <= bound
    return round(on_time / len(window), 3) if window else None


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=15, help="the measured time after the warm-up")
    parser.add_argument("--poll-seconds", type=int, default=300)
    parser.add_argument("--sims", type=int, default=4, help="simulator processes per app")
    parser.add_argument("--records", type=int, default=20, help="records per simulator")
    parser.add_argument("--changes-per-minute", type=float, default=6)
    parser.add_argument("--warm-up-minutes", type=float, default=60, help="give up when not all are imported by then")
    parser.add_argument("--worker-limit", type=int, default=8, help="task runs at once in the task worker")
    return parser.parse_args()


if __name__ == "__main__":
    main()
