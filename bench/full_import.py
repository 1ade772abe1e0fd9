"""Full-import throughput: inlet end to end vs. the raw listing speed of the same source, in one run.

    .venv/bin/python bench/full_import.py [--records 100000] [--source json_server|hubspot]

Starts the source (json-server 0.17.4 with N users, or the HubSpot simulator at its page cap of 100), a
Prefect server (SQLite) and the demo app, all on 127.0.0.1. Lists the source with a plain httpx loop (the
same requests inlet sends), then runs inlet's full-import flow into the demo app, then lists raw again.
Prints records/s, the ratio inlet / raw, and peak RSS. Paste the printed row into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
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
OUT = ROOT / "bench" / "out"

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from inlet.processes import free_port, start_process, stop_process  # noqa: E402


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
    from tests.support.real_apps import json_server_bin, write_json_server_db

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
    args = parser.parse_args()

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
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from inlet.cli import initialise
    from inlet.prefect_env import apply_prefect_env, local_api_url, prefect_env
    from inlet.settings import get_settings
    from inlet.store import open_store
    from inlet.tenancy import add_connection, add_tenant
    from inlet.vault import Vault

    settings = get_settings()
    initialise(settings)
    secret = settings.destination_secret()
    assert secret is not None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        source, connector, parameters, credentials = start_source(args.source, args.records, OUT)
        processes.append(source)
        processes.append(
            start_process(
                [sys.executable, "-m", "inlet.demo_app", "--port", str(app_port), "--db", str(OUT / "app.db")],
                f"http://127.0.0.1:{app_port}/health",
                env={"INLET_DEMO_APP_SECRET": secret.get_secret_value()},
                log_path=OUT / "app.log",
            )
        )
        processes.append(
            start_process(
                [
                    str(Path(sys.executable).parent / "prefect"),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(prefect_port),
                ],
                local_api_url(settings) + "/health",
                env=prefect_env(settings),
                log_path=OUT / "prefect.log",
                timeout=180,
            )
        )
        engine = open_store(settings.store_url)
        add_tenant(engine, "bench")
        add_connection(
            engine,
            Vault.from_settings(settings),
            tenant_id="bench",
            connection_id="bench-src",
            app=connector,
            parameters=parameters,
            credentials=credentials,
        )
        apply_prefect_env(settings, use_local_server=True)

        raw_before = raw_listing(connector, parameters, credentials)
        from flows.full_import import full_import
        from flows.runtime import ImportJob

        names = ["source", "demo app", "prefect server"]
        before = cpu_seconds(processes)
        started = time.perf_counter()
        summary = asyncio.run(full_import(ImportJob(tenant="bench", connection="bench-src")))
        elapsed = time.perf_counter() - started
        cpu = {n: after - b for n, b, after in zip(names + ["inlet"], before, cpu_seconds(processes), strict=True)}
        raw_after = raw_listing(connector, parameters, credentials)
        stats = httpx.get(f"http://127.0.0.1:{app_port}/stats", timeout=30).json()
    finally:
        for proc in reversed(processes):
            stop_process(proc)

    raw = (raw_before + raw_after) / 2
    inlet = summary.records_seen / elapsed
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"source {args.source}, {args.records} records, {summary.pages} pages")
    print(f"raw listing:    {raw_before:,.0f} rec/s before, {raw_after:,.0f} rec/s after (mean {raw:,.0f})")
    print(f"inlet full import, source -> app: {inlet:,.0f} rec/s ({elapsed:.2f} s), delivered {summary.delivered}")
    print(f"ratio inlet / raw: {inlet / raw:.0%}")
    print(f"peak RSS of this process (listing + import): {rss:.0f} MB")
    print(
        "CPU seconds during the import:",
        {name: round(value, 1) for name, value in cpu.items()},
        f"(wall {elapsed:.1f} s, {os.cpu_count()} cores)",
    )
    print("where the time went:", {k: v for k, v in summary.model_dump().items() if k.startswith("seconds")})
    print(f"app holds {stats['records']} records, duplicates {stats['duplicates']}")
    print(
        f"| {time.strftime('%Y-%m-%d')} | {args.source} | {args.records:,} | {summary.pages} | {raw:,.0f} | "
        f"{inlet:,.0f} | {inlet / raw:.0%} | {rss:.0f} MB |"
    )
    if stats["records"] != args.records:
        raise SystemExit("the app does not hold every record")


if __name__ == "__main__":
    main()
