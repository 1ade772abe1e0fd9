"""Sync at scale: many connections kept up to date by the one scheduler, with random changes in the sources.

    .venv/bin/python bench/sync_scale.py                                   # 1,000 connections, 300 s, 15 min
    nice .venv/bin/python bench/sync_scale.py --connections 100 --minutes 3 --poll-seconds 60   # a small check

Everything runs as `inlet up` runs it, on 127.0.0.1 under bench/out/sync_scale: a Prefect server (SQLite),
the demo app, `python -m flows.serve` (prefect.yaml's deployments: `sync-scheduler`, whose run ticks every 10 s,
deliver-outbox, push-outbox) and one Prefect task worker (`python -m flows.task_worker`), which runs each due
connection's `sync-connection` task (its full import) and the batched `sync-polls` tasks (its polls). The
sources are simulators of several apps (HubSpot and Pipedrive, `--sims` processes of each, `--records` records
each); connection i reads simulator i mod sims, ten connections per tenant, each with the given poll interval.

1. Warm-up: the scheduler imports every new connection (no prefect.yaml edit); wait until all are imported.
2. Quiet phase (the first third of `--minutes`): no source changes. CPU per no-change poll = the CPU of inlet
   (serve and its flow-run children, the task worker) plus the Prefect server in the phase, over the polls
   started in it (the scheduler ticks and deliver-outbox are in the numerator: they are what polling costs).
3. Change phase (the rest): `--changes-per-minute` updates of random records in random simulators. Each
   change's lag, per connection reading that simulator, is the demo app's commit time minus the change time;
   after the phase the bench waits up to one poll interval + 60 s for the last ones (missing: reported).

On time: a poll started within its interval + 30 s of the connection's previous poll (or import); the polls are
read from the store (`sync_policy.last_poll_at`, each poll's start) every 5 s. Share of the machine: that CPU over
wall time x cores. Prints a JSON result and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
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
    signal.signal(signal.SIGTERM, _exit_on_signal)  # the finally below stops every process group it started
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
                command += _limits(app, args.connections / (args.sims * len(APPS)))
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


def _limits(app: str, accounts: float) -> list[str]:
    """A simulator's rate limits as the sum of `accounts` accounts': its connections share the bench's one token,
    where real ones each have their own (one token's Pipedrive burst of 20 per 2 s, shared by 250 connections,
    had them block each other for minutes: Cloudflare's 403 after ten ignored 429s, then 60 s waits)."""
    scale = max(1, round(accounts))
    if app == "pipedrive":
        return ["--burst-limit", str(20 * scale), "--daily-tokens", str(300_000 * scale)]
    return ["--rate-limit", str(190 * scale), "--daily-limit", str(1_000_000 * scale)]


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


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
    polls = _PollLog(engine)
    polls.start()
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
    polls.stop()
    quiet_polls = polls.started_between(t0, t1)
    cores = psutil.cpu_count() or 1
    late = polls.late(t0, t2, args.poll_seconds + 30)
    window = polls.started_between(t0, t2)
    return {
        "connections": len(connections),
        "simulators": {app: args.sims for app in APPS},
        "records_per_simulator": args.records,
        "poll_seconds": args.poll_seconds,
        "minutes": args.minutes,
        "warm_up_seconds": round(warm_seconds, 1),
        "quiet_seconds": round(t1 - t0, 1),
        "quiet_polls": quiet_polls,
        "cpu_quiet_seconds": dict(
            zip(("prefect", "serve", "worker"), [round(b - a, 1) for a, b in zip(cpu0, cpu1, strict=True)], strict=True)
        ),
        "cpu_per_no_change_poll": round((sum(cpu1) - sum(cpu0)) / quiet_polls, 3) if quiet_polls else None,
        "polls_in_window": window,
        "polls_expected": round(len(connections) * (t2 - t0) / args.poll_seconds),
        "late_polls": [(c, wait) for c, wait, _ in late][:50],
        "on_time_share": _on_time(window, late, t2),
        "changes": len(changes),
        "lag_samples": len(lags),
        "lag_missing": missing,
        "lag_p50_seconds": round(statistics.median(lags), 1) if lags else None,
        "lag_p99_seconds": round(statistics.quantiles(lags, n=100)[98], 1) if len(lags) >= 2 else None,
        "machine_share": round((sum(cpu2) - sum(cpu0)) / ((t2 - t0) * cores), 3),
        "machine_share_quiet": round((sum(cpu1) - sum(cpu0)) / ((t1 - t0) * cores), 3),
        "cores": cores,
        "load_average_start": load_start,
    }


class _PollLog(threading.Thread):
    """Every poll's start, read from the store every 5 s (`sync_policy.last_poll_at` is when the connection's last
    poll started; a poll interval is far longer than 5 s, so no poll is missed), with each connection's import."""

    def __init__(self, engine: Any) -> None:
        super().__init__(daemon=True)
        self._engine = engine
        self._halt = threading.Event()
        self.starts: dict[str, set[float]] = {}
        self.imported: dict[str, float] = {}

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(5)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self._sample()

    def _sample(self) -> None:
        from sqlmodel import Session, select

        from inlet.store import SyncPolicy

        with Session(self._engine) as session:
            rows = session.exec(select(SyncPolicy.connection_id, SyncPolicy.last_poll_at, SyncPolicy.imported_at))
            for connection, polled, imported in rows:
                if polled is not None:
                    self.starts.setdefault(connection, set()).add(_epoch(polled))
                if imported is not None:
                    self.imported[connection] = _epoch(imported)

    def started_between(self, start: float, end: float) -> int:
        return sum(1 for starts in self.starts.values() for s in starts if start <= s < end)

    def late(self, start: float, end: float, bound: float) -> list[tuple[str, float, float]]:
        """(connection, seconds since its previous poll or import) of each wait in [start, end) over `bound`,
        including a connection whose latest poll is more than `bound` before `end` (a poll that never came)."""
        found: list[tuple[str, float, float]] = []
        for connection, imported in self.imported.items():
            times = sorted({imported, *self.starts.get(connection, set())})
            for before, after in zip(times, [*times[1:], end], strict=True):
                if after > start and after - before > bound:
                    found.append((connection, round(after - before, 1), after))
        return found


def _on_time(window: int, late: list[tuple[str, float, float]], end: float) -> float | None:
    """Polls started on time over the polls due: a late wait that ended in a poll is a late poll; one still open
    at the end is a poll that never came."""
    never = sum(1 for _, _, after in late if after >= end)
    due = window + never
    return round((due - len(late)) / due, 3) if due else None


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


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
    """User+system CPU of each process and of its living descendants, with the ended children each waited for
    (a served run forked by `serve`'s fork server is the fork server's child, not `serve`'s)."""

    def own(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:  # ended between the listing and the reading: its parent has it, or will
            return 0.0
        return float(times.user + times.system + times.children_user + times.children_system)

    def of(proc: psutil.Process) -> float:
        return own(proc) + sum(own(child) for child in proc.children(recursive=True))

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
