"""CPU per flow run on a process worker: Prefect's (`prefect worker start`) against inlet's (`python -m flows.worker`).

    .venv/bin/python bench/worker_cpu.py [--runs 10] [--rounds 1] [--database-url postgresql+asyncpg://...]

A Prefect server (SQLite under the out folder, or the database given) on 127.0.0.1, one `process` work pool and
one small deployment on it: `deliver-outbox` (prefect.yaml's entrypoint and pull step, no schedule) over an
empty inlet store, so a run opens the store, finds nothing due and completes. For each worker in turn: start it
(`--limit 2`, polling every second as in tests/integration/test_scale_out.py), one warm-up run (the store's
migrations, the fork server's first fork), then `--runs` runs one after another, each waited for until it is
final and its process is gone. Measured as docs/scale-out.md does: psutil's CPU (user + system) of the worker
and all its descendants, ended children included (a process's `children_*` times), before and after the
counted runs; the server's own CPU separately. Prints the rows for bench/RESULTS.md and writes results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "worker-cpu"

from cryptography.fernet import Fernet  # noqa: E402

from inlet.local import free_port, start_process, stop_process  # noqa: E402

POOL = "bench-process"
ENTRYPOINT = "flows/deliver_outbox.py:deliver_outbox"
WORKERS = {
    "prefect": [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--type", "process"],
    "inlet": [sys.executable, "-m", "flows.worker"],
}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def main() -> None:
    args = _parse()
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "tmp").mkdir(parents=True)
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}/api"
    env = _environment(api, args.database_url)
    os.environ.update(env)
    prefect = str(Path(sys.executable).parent / "prefect")
    server = start_process(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
        api + "/health",
        cwd=OUT,
        timeout=180,
        log_path=OUT / "server.log",
    )
    results: list[dict[str, Any]] = []
    try:
        deployment = _deploy()
        load = os.getloadavg()
        for round_ in range(args.rounds):
            for worker in WORKERS:
                results.append(_measure(worker, deployment, args.runs, server.pid, round_) | {"load": load})
                print(json.dumps(results[-1]), flush=True)
    finally:
        stop_process(server, 15.0)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nload average at start {results[0]['load']}, at end {os.getloadavg()}")
    columns = ["worker", "start + warm-up run", "runs", "CPU-s per run: worker and its processes"]
    columns += ["the worker's own", "Prefect server", "wall s"]
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for r in results:
        cells = [r["worker"], f"{r['start_and_warm_up_cpu']:.1f}", r["runs"], f"{r['cpu']:.2f}"]
        cells += [f"{r['worker_own_cpu']:.2f}", f"{r['server_cpu']:.2f}", f"{r['wall']:.1f}"]
        print("| " + " | ".join(map(str, cells)) + " |")


def _environment(api: str, database_url: str | None) -> dict[str, str]:
    env = {
        "PREFECT_HOME": str(OUT / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "TMPDIR": str(OUT / "tmp"),
        "INLET_HOME": str(OUT / "inlet"),
        "INLET_DATABASE_URL": f"sqlite:///{OUT / 'inlet.db'}",
        "INLET_SECRET_KEY": Fernet.generate_key().decode(),
        "INLET_DESTINATION__URL": "http://127.0.0.1:9",  # nothing is due, so nothing is sent
        "INLET_DESTINATION__SECRET": "whsec_" + "YmVuY2g=",
        "PYTHONPATH": str(ROOT),
    }
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return env


def _deploy() -> str:
    """The pool, and deliver-outbox on it as `prefect deploy` makes it from prefect.yaml (without the schedule)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process", base_job_template=template))
        deployment = client.create_deployment(
            flow_id=client.create_flow_from_name("deliver-outbox"),
            name="deliver-outbox",
            entrypoint=ENTRYPOINT,
            work_pool_name=POOL,
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
        )
    return str(deployment)


def _measure(worker: str, deployment: str, runs: int, server_pid: int, round_: int) -> dict[str, Any]:
    port = free_port()
    command = [*WORKERS[worker], "--pool", POOL, "--name", f"{worker}-{round_}", "--limit", "2", "--with-healthcheck"]
    extra = {"PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1", "PREFECT_WORKER_WEBSERVER_PORT": str(port)}
    log = OUT / f"worker-{worker}-{round_}.log"
    proc = start_process(command, f"http://127.0.0.1:{port}/health", cwd=OUT, env=extra, timeout=180, log_path=log)
    try:
        _run(deployment)  # warm-up: the store's migrations; for inlet's worker its first import of the flow's module
        started = _tree_cpu(proc.pid)  # its start, the fork server's preload and the warm-up run
        cpu0, own0, server0, wall0 = _tree_cpu(proc.pid), _own_cpu(proc.pid), _tree_cpu(server_pid), time.monotonic()
        states = [_run(deployment) for _ in range(runs)]
        cpu1, own1, server1, wall1 = _tree_cpu(proc.pid), _own_cpu(proc.pid), _tree_cpu(server_pid), time.monotonic()
    finally:
        stop_process(proc, 15.0)
    return {
        "worker": worker,
        "round": round_,
        "runs": runs,
        "states": sorted(set(states)),
        "start_and_warm_up_cpu": started,
        "cpu": (cpu1 - cpu0) / runs,
        "worker_own_cpu": (own1 - own0) / runs,  # the rest: the runs' processes (and the fork server)
        "server_cpu": (server1 - server0) / runs,
        "wall": (wall1 - wall0) / runs,
    }


def _run(deployment: str) -> str:
    """Start one run and wait until it is final and its process has ended; its final state."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment)  # type: ignore[arg-type]
        while True:
            run = client.read_flow_run(run.id)
            state = run.state.type.value if run.state else "NONE"
            pid = int(run.infrastructure_pid) if run.infrastructure_pid else None
            if state in FINAL and (pid is None or not _alive(pid)):
                return state
            time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _own_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _tree_cpu(pid: int) -> float:
    """User + system CPU of a process and its descendants, each with the children it has reaped."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="counted runs per worker (after one warm-up run)")
    parser.add_argument("--rounds", type=int, default=1, help="measure both workers this many times, in turn")
    parser.add_argument("--database-url", default=None, help="the Prefect server's database (default: SQLite)")
    return parser.parse_args()


if __name__ == "__main__":
    main()
