"""Scale: full-import time and peak RSS as the record count grows, and many small connections run at once.

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--connections 1000] [--plot bench/scale.png]
    .venv/bin/python bench/scale.py --quick          # smoke check: 200 records, 5 connections

The embedded default, every process on 127.0.0.1: a Prefect server on SQLite, the demo app and the inlet store
on SQLite, with INLET_HOME, PREFECT_HOME and TMPDIR under the out folder (bench/out/scale), analytics off.
The connector's request budget (HubSpot's 95 requests per 10 s, ~950 records/s) is lifted, so the bench
measures inlet rather than the API's rate limit.

- Sizes: each size gets its own HubSpot simulator (page 100, the API's cap), tenant and connection. The
  import runs in a fresh child Python process that calls the `full-import` flow once; its peak RSS is that
  child's own `getrusage(RUSAGE_SELF).ru_maxrss` (the kernel's high-water mark of the process: interpreter,
  Prefect, inlet and the import), its seconds are the flow call alone.
- Connections: N connections of 10 records each (10 per tenant) against one simulator. One fresh child
  calls the `full-import` flow for every connection, at most --concurrency at a time on one event loop (as
  `serve(limit=4)` would, without a Python process per run). Each call creates its flow run through the API.

Writes results.json to the out folder and the plot, and prints the rows for bench/RESULTS.md.
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
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from bench.full_import import cpu_seconds, start_source  # noqa: E402
from inlet.local import DEMO_TOKEN, Stack, free_port, local_client, start_stack, stop_process  # noqa: E402
from inlet.settings import Settings  # noqa: E402

RESULT = "RESULT "  # a child's last stdout line: this prefix, then JSON
PER_TENANT = 10


def main() -> None:
    args = _parse()
    if args.child:
        print(RESULT + json.dumps(_child(args)), flush=True)
        return
    if args.from_results:
        results = _merge([json.loads(Path(path).read_text()) for path in args.from_results])
    else:
        out = Path(args.out).resolve()
        shutil.rmtree(out, ignore_errors=True)
        (out / "tmp").mkdir(parents=True)
        results = _measure(args, out)
        (out / "results.json").write_text(json.dumps(results, indent=2))
    _report(results)
    if args.plot and results["sizes"]:
        _plot(results, Path(args.plot))
        print(f"plot: {args.plot}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="record counts, comma-separated")
    parser.add_argument("--connections", type=int, default=1000, help="small connections to run (0: skip)")
    parser.add_argument("--records-per-connection", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4, help="flow runs in flight in the connections phase")
    parser.add_argument("--plot", default="", help="write the plot (PNG) here")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "scale"), help="state, logs, results.json")
    parser.add_argument("--quick", action="store_true", help="smoke check: --sizes 200 --connections 5")
    parser.add_argument("--from-results", nargs="+", help="report and plot earlier results.json files, merged")
    parser.add_argument("--child", choices=["import", "connections"], help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.connections = "200", 5
    return args


def _measure(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Start the embedded default, run every size, then the connections; stop everything."""
    os.environ.update(
        {
            "TMPDIR": str(out / "tmp"),
            "INLET_HOME": str(out / "home"),
            "INLET_PREFECT_PORT": str(free_port()),
            "INLET_DEMO_APP_PORT": str(free_port()),
            "INLET_SIMULATOR_PORT": str(free_port()),
            "INLET_DESTINATION__BATCH_SIZE": "1000",
            "INLET_EGRESS__ALLOW_HOSTS": '["127.0.0.1"]',  # the simulators listen on loopback
            "INLET_SOURCE_BUDGET__REQUESTS": "1000000",  # lift HubSpot's 95 requests per 10 s: measure inlet
            "INLET_SOURCE_BUDGET__PER_SECONDS": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from inlet.local import local_api_url, prefect_env
    from inlet.service import initialise
    from inlet.settings import get_settings

    settings = get_settings()
    initialise(settings)
    os.environ.update(prefect_env(settings))  # PREFECT_HOME inside INLET_HOME, analytics off, even under pytest
    os.environ["PREFECT_API_URL"] = local_api_url(settings)
    stack = start_stack(settings, simulator_records=args.records_per_connection, serve_flows=False)
    try:
        sizes = [_measure_import(stack, int(n), out) for n in args.sizes.split(",") if n]
        many = _measure_connections(stack, args, out) if args.connections else None
    finally:
        stack.stop()
    return {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "sizes": sizes, "connections": many}


def _merge(saved: list[dict[str, Any]]) -> dict[str, Any]:
    """The sizes of every saved run, in record order, and the last saved connections figure."""
    sizes = sorted((size for result in saved for size in result["sizes"]), key=lambda size: size["records"])
    many = [result["connections"] for result in saved if result["connections"]]
    return {**saved[0], "sizes": sizes, "connections": many[-1] if many else None}


def _measure_import(stack: Stack, records: int, out: Path) -> dict[str, Any]:
    """One full import of `records` HubSpot contacts into the demo app, in a fresh child process."""
    source, app, parameters, credentials = start_source("hubspot", records, out / f"sim-{records}")
    tenant = f"size-{records}"
    try:
        _add_connections(stack.settings, [(tenant, f"{tenant}-hubspot")], app, parameters, credentials)
        others = [stack.processes["prefect"], stack.processes["demo-app"], source]
        held, load, cpu = _app_records(stack), os.getloadavg()[0], cpu_seconds(others)[:-1]
        child = _run_child("import", [(tenant, f"{tenant}-hubspot")], 1, out)
        cpu = [after - before for before, after in zip(cpu, cpu_seconds(others)[:-1], strict=True)]
        child["in_app"] = _app_records(stack) - held
    finally:
        stop_process(source)
    child |= {"records": records, "load_before": load, "load_after": os.getloadavg()[0]}
    child["cpu"] = {
        "inlet": child["cpu_seconds"],
        **dict(zip(["prefect server", "demo app", "source"], cpu, strict=True)),
    }
    child["records_per_second"] = records / child["seconds"]
    print(f"{records:>9,} records: {child['seconds']:.1f} s, {child['records_per_second']:,.0f} rec/s, "
          f"peak RSS {child['peak_rss_mb']:.0f} MB, load {load:.1f}", flush=True)  # fmt: skip
    return child


def _measure_connections(stack: Stack, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """`args.connections` connections of a few records each, all run by one child process."""
    jobs = [(f"t{i // PER_TENANT:04d}", f"t{i // PER_TENANT:04d}-c{i % PER_TENANT}") for i in range(args.connections)]
    started = time.perf_counter()
    parameters = {"base_url": stack.urls["simulator"]}
    _add_connections(stack.settings, jobs, "hubspot", parameters, {"token": SecretStr(DEMO_TOKEN)})
    set_up = time.perf_counter() - started
    held, load = _app_records(stack), os.getloadavg()[0]
    cpu = cpu_seconds([stack.processes["prefect"]])[0]
    child = _run_child("connections", jobs, args.concurrency, out)
    child |= {"connections": len(jobs), "records_each": args.records_per_connection, "set_up_seconds": set_up}
    child |= {"concurrency": args.concurrency, "in_app": _app_records(stack) - held}
    child |= {"load_before": load, "load_after": os.getloadavg()[0]}
    child["cpu"] = {"inlet": child["cpu_seconds"], "prefect server": cpu_seconds([stack.processes["prefect"]])[0] - cpu}
    child["runs_per_minute"] = 60 * child["completed"] / child["seconds"]
    print(f"{len(jobs):,} connections: {child['seconds']:.1f} s, {child['runs_per_minute']:.0f} runs/min, "
          f"{child['failed']} failed, peak RSS {child['peak_rss_mb']:.0f} MB, load {load:.1f}", flush=True)  # fmt: skip
    return child


def _add_connections(
    settings: Settings,
    jobs: list[tuple[str, str]],
    app: str,
    parameters: dict[str, str],
    credentials: dict[str, SecretStr],
) -> None:
    from inlet.store import Vault, add_connection, add_tenant, open_store

    engine, vault = open_store(settings.store_url), Vault.from_settings(settings)
    for tenant in dict.fromkeys(tenant for tenant, _ in jobs):
        add_tenant(engine, tenant)
    for tenant, connection in jobs:
        add_connection(
            engine,
            vault,
            tenant_id=tenant,
            connection_id=connection,
            app=app,
            parameters=parameters,
            credentials=credentials,
        )


def _app_records(stack: Stack) -> int:
    with local_client() as client:
        return int(client.get(stack.urls["demo-app"] + "/stats").json()["records"])


def _run_child(mode: str, jobs: list[tuple[str, str]], concurrency: int, out: Path) -> dict[str, Any]:
    """Run this script as a fresh child process on `jobs` (tenant, connection); its RESULT line as a dict."""
    log, jobs_file = out / "child.log", out / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    command = [sys.executable, __file__, "--child", mode, "--jobs", str(jobs_file), "--concurrency", str(concurrency)]
    with log.open("ab") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith(RESULT)]
    if done.returncode or not lines:
        raise SystemExit(f"the child exited with {done.returncode}; see {log}:\n{log.read_text()[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT))
    return result


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """In the child: run the flow, then report seconds and this process's own peak RSS and CPU."""
    import psutil

    from flows.full_import import ImportSummary, full_import
    from flows.runtime import ImportJob

    jobs = [
        ImportJob(tenant=tenant, connection=connection)
        for tenant, connection in json.loads(Path(args.jobs).read_text())
    ]
    gate = asyncio.Semaphore(args.concurrency)

    process, rss_every = psutil.Process(), max(1, len(jobs) // 10)
    rss_mb: list[float] = []  # resident set after every tenth of the runs: does it grow with the runs?
    finished: list[ImportJob] = []

    async def one(job: ImportJob) -> tuple[float, ImportSummary | None]:
        async with gate:
            started = time.perf_counter()
            try:
                summary: ImportSummary | None = await full_import(job)
            except Exception:  # a failed run is counted, and its traceback goes to child.log
                traceback.print_exc()
                summary = None
            finished.append(job)
            if len(finished) % rss_every == 0:
                rss_mb.append(round(process.memory_info().rss / 2**20, 1))
            return time.perf_counter() - started, summary

    async def run_all() -> list[tuple[float, ImportSummary | None]]:
        return await asyncio.gather(*(one(job) for job in jobs))

    started = time.perf_counter()
    runs = asyncio.run(run_all())
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    each = sorted(s for s, _ in runs)
    done = [summary for _, summary in runs if summary is not None]
    return {
        "seconds": seconds,
        "completed": len(done),
        "failed": len(runs) - len(done),
        "delivered": sum(summary.delivered for summary in done),
        "run_seconds_p50": each[len(each) // 2],
        "run_seconds_p95": each[min(len(each) - 1, int(len(each) * 0.95))],
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "rss_mb_by_tenths": rss_mb,
    }


def _report(results: dict[str, Any]) -> None:
    print(
        "\n| records | seconds | records/s | peak RSS (flow process) | CPU s: inlet / Prefect / app / source | load |"
    )
    print("|---|---|---|---|---|---|")
    for size in results["sizes"]:
        cpu = " / ".join(f"{value:.1f}" for value in size["cpu"].values())
        print(
            f"| {size['records']:,} | {size['seconds']:.1f} | {size['records_per_second']:,.0f} | "
            f"{size['peak_rss_mb']:.0f} MB | {cpu} | {size['load_before']:.1f} → {size['load_after']:.1f} |"
        )
    many = results["connections"]
    if many:
        print(
            f"\n{many['connections']:,} connections × {many['records_each']} records, "
            f"concurrency {many['concurrency']}: "
            f"{many['seconds']:.1f} s, {many['runs_per_minute']:.0f} runs/min, per run p50 "
            f"{many['run_seconds_p50']:.2f} s / p95 {many['run_seconds_p95']:.2f} s, {many['failed']} failed, "
            f"{many['in_app']:,} records in the app, peak RSS {many['peak_rss_mb']:.0f} MB, CPU s "
            f"{ {k: round(v, 1) for k, v in many['cpu'].items()} }, set-up {many['set_up_seconds']:.1f} s"
        )


def _plot(results: dict[str, Any], path: Path) -> None:
    """Two panels over the record count (log x): seconds, and peak RSS; the connections figure in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    sizes = results["sizes"]
    records = [size["records"] for size in sizes]
    fig, (time_axis, rss_axis) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    time_axis.plot(records, [size["seconds"] for size in sizes], "o-")
    for size in sizes:
        label = f"{size['seconds']:.1f} s\n{size['records_per_second']:,.0f} rec/s"
        time_axis.annotate(
            label, (size["records"], size["seconds"]), textcoords="offset points", xytext=(0, 10), ha="center"
        )
    time_axis.set(xscale="log", yscale="log", xlabel="records", ylabel="seconds", title="full import time")
    time_axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    time_axis.margins(x=0.15, y=0.25)
    rss = [size["peak_rss_mb"] for size in sizes]
    rss_axis.plot(records, rss, "o-", color="tab:green")
    rss_axis.axhline(300, linestyle="--", color="tab:red", label="target: < 300 MB")
    rss_axis.set(xscale="log", xlabel="records", ylabel="MB", title="peak RSS of the flow process", ylim=(0, 350))
    rss_axis.margins(x=0.15)
    rss_axis.legend(loc="lower right")
    title = f"inlet full import, HubSpot simulator → demo app, {results['cores']} cores, {results['date']}"
    if many := results["connections"]:
        title += (
            f"\n{many['connections']:,} connections × {many['records_each']} records: {many['seconds']:.0f} s, "
            f"{many['runs_per_minute']:.0f} runs/min, peak RSS {many['peak_rss_mb']:.0f} MB"
        )
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
