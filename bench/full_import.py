"""Full-import throughput: the raw listing, dlt and inlet over the same source into the same app, in one run.

    .venv/bin/python bench/full_import.py [--records 100000] [--source json_server|hubspot] [--no-dlt] [--profile]
                                          [--cold-prefect]

Starts the source (json-server 0.17.4 with N users, or the HubSpot simulator at its page cap of 100), a
Prefect server (SQLite) and the demo app, all on 127.0.0.1. Then, in one run: a raw listing (a plain httpx
loop, the same requests inlet sends); dlt's `rest_api` source into the demo app (bench/dlt_import.py, in its own
process; `pip install -e '.[bench]'`); the demo app cleared; inlet's full-import flow into it; a raw listing
again. Before inlet's import, one small flow run warms the Prefect server (its first run pays lazy imports and
compiled statements once; `--cold-prefect` measures without it). Prints records/s and the share of raw for dlt
and inlet, CPU seconds per process during each, inlet's CPU per record, the Prefect server's CPU per 100k records,
peak RSS and the load average at start; with `--profile`, py-spy samples inlet's process during its import and
the top functions are printed. Paste the printed rows into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "full-import"

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from inlet.local import free_port, start_process, stop_process  # noqa: E402


def raw_listing(connector_name: str, parameters: dict[str, str], credentials: dict[str, SecretStr]) -> float:
    """Records/s of a plain loop over the source's pages, with the requests inlet would send."""
    from connectors.budget import RequestBudget
    from connectors.egress import EgressPolicy
    from connectors.registry import open_connector

    async def run() -> float:
        unthrottled = RequestBudget(1_000_000, 1)
        loopback = EgressPolicy(allow_hosts=frozenset({"127.0.0.1"}))
        connector = open_connector(
            connector_name, parameters=parameters, credentials=credentials, budget=unthrottled, egress=loopback
        )
        collection = connector.spec.collection_for("users")
        started, count = time.perf_counter(), 0
        async with connector:
            async for page in connector.pages(collection):
                count += len(page.records)
        return count / (time.perf_counter() - started)

    return asyncio.run(run())


def cpu_seconds(processes: list[Any]) -> list[float]:
    """User+system CPU of each child process (with its children), then of this process."""
    import psutil

    def of(proc: psutil.Process) -> float:
        total = float(sum(proc.cpu_times()[:2]))
        return total + sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))

    own = resource.getrusage(resource.RUSAGE_SELF)
    return [of(psutil.Process(p.pid)) for p in processes] + [own.ru_utime + own.ru_stime]


def start_source(
    kind: str, records: int, folder: Path
) -> tuple[subprocess.Popen[bytes], str, dict[str, str], dict[str, SecretStr]]:
    """Start the source with `records` users; the process, the connector's name, its parameters and credentials."""
    port = free_port()
    if kind == "hubspot":
        cmd = [
            sys.executable,
            "-m",
            "connectors.hubspot.simulator",
            "--port",
            str(port),
            "--records",
            str(records),
            "--token",
            "bench-token",
            "--rate-limit",
            "1000000",
        ]
        proc = start_process(cmd, f"http://127.0.0.1:{port}/_sim/stats", log_path=folder / "source.log")
        return proc, "hubspot", {"base_url": f"http://127.0.0.1:{port}"}, {"token": SecretStr("bench-token")}
    from bench.real_apps import json_server_bin, write_json_server_db

    binary = json_server_bin()
    if binary is None:
        raise SystemExit("json-server is not installed: run `make bench` (it installs it) or use --source hubspot")
    write_json_server_db(folder / "db.json", records)
    cmd = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--quiet", str(folder / "db.json")]
    proc = start_process(cmd, f"http://127.0.0.1:{port}/users?_limit=1", log_path=folder / "source.log", timeout=120)
    return proc, "json_server", {"base_url": f"http://127.0.0.1:{port}"}, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--source", choices=["json_server", "hubspot"], default="json_server")
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt comparator")
    parser.add_argument("--profile", action="store_true", help="sample inlet's process with py-spy")
    parser.add_argument(
        "--cold-prefect",
        action="store_true",
        help="measure on a Prefect server that has run no flow yet (default: one small flow run warms it first)",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    prefect_port, app_port = free_port(), free_port()
    os.environ.update(
        {
            "INLET_HOME": str(OUT / "home"),
            "INLET_PREFECT_PORT": str(prefect_port),
            "INLET_DESTINATION__URL": f"http://127.0.0.1:{app_port}",
            "INLET_DESTINATION__BATCH_SIZE": "1000",
            "INLET_EGRESS__ALLOW_HOSTS": '["127.0.0.1"]',  # the sources listen on loopback
            # The raw listing and dlt send unthrottled; so does inlet here (HubSpot's connector keeps a budget of
            # 95 requests per 10 s, which alone makes 1,000 pages take ~100 s: the figure would measure the budget).
            "INLET_SOURCE_BUDGET__REQUESTS": "1000000",
            "INLET_SOURCE_BUDGET__PER_SECONDS": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from inlet.service import initialise
    from inlet.settings import get_settings

    settings = get_settings()
    initialise(settings)
    secret = settings.destination_secret()
    assert secret is not None
    app_url = f"http://127.0.0.1:{app_port}"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        source, connector, parameters, credentials = start_source(args.source, args.records, OUT)
        processes["source"] = source
        processes["demo app"] = _start_demo_app(app_port, secret.get_secret_value())
        processes["prefect server"] = _start_prefect(settings)
        _add_connection(settings, connector, parameters, credentials)
        raw_before = raw_listing(connector, parameters, credentials)
        dlt = None if args.no_dlt else run_dlt(args.source, parameters, credentials, app_url, processes, secret)
        if dlt is not None:
            httpx.post(f"{app_url}/_demo/reset", timeout=60).raise_for_status()
        warm_up = None if args.cold_prefect else warm_up_prefect(processes)
        inlet = run_inlet(processes, args.profile)
        inlet["warm_up"] = warm_up
        raw_after = raw_listing(connector, parameters, credentials)
        stats = httpx.get(f"{app_url}/stats", timeout=30).json()
    finally:
        for proc in reversed(processes.values()):
            stop_process(proc)
    _report(args, load, (raw_before, raw_after), dlt, inlet, stats)


def _start_demo_app(port: int, secret: str) -> subprocess.Popen[bytes]:
    return start_process(
        [sys.executable, "-m", "inlet.demo.app", "--port", str(port), "--db", str(OUT / "app.db")],
        f"http://127.0.0.1:{port}/health",
        env={"INLET_DEMO_APP_SECRET": secret},
        log_path=OUT / "app.log",
    )


def _start_prefect(settings: Any) -> subprocess.Popen[bytes]:
    from inlet.local import local_api_url, prefect_env

    port = str(settings.prefect_port)
    return start_process(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
        local_api_url(settings) + "/health",
        env=prefect_env(settings),
        log_path=OUT / "prefect.log",
        timeout=180,
    )


def _add_connection(
    settings: Any, connector: str, parameters: dict[str, str], credentials: dict[str, SecretStr]
) -> None:
    from inlet.local import apply_prefect_env
    from inlet.store import Vault, add_connection, add_tenant, open_store

    engine = open_store(settings.store_url)
    add_tenant(engine, "bench")
    vault = Vault.from_settings(settings)
    add_connection(
        engine,
        vault,
        tenant_id="bench",
        connection_id="bench-src",
        app=connector,
        parameters=parameters,
        credentials=credentials,
    )
    apply_prefect_env(settings, use_local_server=True)


def run_dlt(
    source: str,
    parameters: dict[str, str],
    credentials: dict[str, SecretStr],
    app_url: str,
    processes: dict[str, subprocess.Popen[bytes]],
    secret: SecretStr,
) -> dict[str, Any]:
    """dlt's pipeline in a child process: records, seconds, and CPU per process while it ran."""
    cmd = [sys.executable, str(ROOT / "bench" / "dlt_import.py"), "--source", source]
    cmd += ["--base-url", parameters["base_url"], "--app-url", app_url, "--folder", str(OUT / "dlt")]
    if "token" in credentials:
        cmd += ["--token", credentials["token"].get_secret_value()]
    env = {**os.environ, "INLET_DEMO_APP_SECRET": secret.get_secret_value()}
    before, children = cpu_seconds(list(processes.values())), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the dlt comparator failed:\n{done.stderr[-3000:]}")
    after, spent = cpu_seconds(list(processes.values())), resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = {name: a - b for name, b, a in zip(processes, before, after, strict=False)}
    cpu["dlt"] = spent.ru_utime + spent.ru_stime - children.ru_utime - children.ru_stime
    result["cpu"] = cpu
    return result


def warm_up_prefect(processes: dict[str, subprocess.Popen[bytes]]) -> float:
    """One small flow run (a task, a progress artifact, a concurrency slot) before the measured import; the Prefect
    server's CPU-s it took. A server's first flow run pays its warm-up (lazy imports, statements compiled once, the
    first of each kind of event), which a server that has been running pays once, not per import."""
    from prefect import flow, task

    from flows.artifacts import Progress
    from flows.single_flight import single_flight

    @task(name="warm-up-step", persist_result=False)
    async def step() -> None:
        return None

    @flow(name="warm-up", persist_result=False)
    async def warm_up() -> None:
        async with single_flight("bench-warm-up", 60):
            progress = await Progress.start("warm-up", "bench", "warm-up", expected=1)
            await step()
            await progress.update(1, done=True)

    server = processes["prefect server"]
    before = cpu_seconds([server])[0]
    asyncio.run(warm_up())
    time.sleep(3)  # the server ingests the run's events after it returns
    return cpu_seconds([server])[0] - before


def run_inlet(processes: dict[str, subprocess.Popen[bytes]], profile: bool) -> dict[str, Any]:
    """inlet's full-import flow in this process: the summary, seconds, CPU per process and the profile."""
    from contextlib import nullcontext

    from bench.profiling import Sampler, top, waiting_share
    from flows.full_import import full_import
    from flows.runtime import ImportJob

    spy = OUT.parent / "inlet.spy"  # kept after the run (OUT is cleared at the start of the next)
    before = cpu_seconds(list(processes.values()))
    started = time.perf_counter()
    with Sampler(os.getpid(), spy) if profile else nullcontext():
        summary = asyncio.run(full_import(ImportJob(tenant="bench", connection="bench-src")))
    elapsed = time.perf_counter() - started
    after = cpu_seconds(list(processes.values()))
    cpu = {name: a - b for name, b, a in zip([*processes, "inlet"], before, after, strict=True)}
    tops = {order: top(spy, 10, order) for order in ("self", "cumulative")} if profile else {}
    waits = waiting_share(spy) if profile else 0.0
    return {
        "summary": summary,
        "records": summary.records_seen,
        "seconds": elapsed,
        "cpu": cpu,
        "top": tops,
        "waits": waits,
    }


def _report(
    args: argparse.Namespace,
    load: tuple[float, float, float],
    raws: tuple[float, float],
    dlt: dict[str, Any] | None,
    inlet: dict[str, Any],
    stats: dict[str, Any],
) -> None:
    raw = sum(raws) / 2
    summary = inlet["summary"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rates = {"inlet": inlet["records"] / inlet["seconds"]}
    print(f"source {args.source}, {args.records} records, {summary.pages} pages; load average at start {load[0]:.2f}")
    print(f"raw listing:  {raws[0]:,.0f} rec/s before, {raws[1]:,.0f} rec/s after (mean {raw:,.0f})")
    for name, result in (("dlt", dlt), ("inlet", inlet)):
        if result is None:
            continue
        rate = rates[name] = result["records"] / result["seconds"]
        cpu = {k: round(v, 1) for k, v in result["cpu"].items()}
        print(
            f"{name:>5}: {rate:,.0f} rec/s ({rate / raw:.0%} of raw), {result['records']} records in "
            f"{result['seconds']:.2f} s; CPU s {cpu}"
        )
    per_record = inlet["cpu"]["inlet"] / inlet["records"] * 1e6
    server = inlet["cpu"]["prefect server"] / inlet["records"] * 100_000
    print(f"inlet CPU {per_record:.0f} µs/record; Prefect server {server:.1f} CPU-s per 100k records")
    if inlet.get("warm_up") is not None:
        print(f"(the Prefect server was warmed first by one small flow run: {inlet['warm_up']:.1f} CPU-s)")
    else:
        print("(cold Prefect server: its first flow run, warm-up included)")
    print(f"peak RSS of this process (listing + import): {rss:.0f} MB; delivered {summary.delivered}")
    print("where the time went:", {k: v for k, v in summary.model_dump().items() if k.startswith("seconds")})
    print(f"app holds {stats['records']} records, duplicates {stats['duplicates']}")
    if inlet["top"]:
        print(f"inlet profile (py-spy, {OUT.parent / 'inlet.spy'}): waiting {inlet['waits']:.0%} of the samples")
    for order, entries in inlet["top"].items():
        print(f"inlet profile, top 10 by {order} (self, cumulative, function):")
        for entry in entries:
            print(f"  {entry}")
    dlt_cells = f"{rates['dlt']:,.0f} ({rates['dlt'] / raw:.0%})" if "dlt" in rates else "–"
    print(
        f"| {time.strftime('%Y-%m-%d')} | {args.source} | {args.records:,} | {summary.pages} | {load[0]:.1f} | "
        f"{raw:,.0f} | {dlt_cells} | {rates['inlet']:,.0f} ({rates['inlet'] / raw:.0%}) | {per_record:.0f} µs | "
        f"{server:.1f} s | {rss:.0f} MB |"
    )
    if stats["records"] != args.records:
        raise SystemExit("the app does not hold every record")


if __name__ == "__main__":
    main()
