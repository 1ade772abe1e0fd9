"""Push throughput per app, echoes suppressed vs leaked, duplicates: the bi-directional sync's figures.

    .venv/bin/python bench/push.py [--records 100] [--apps json_server,kinto,hubspot,hubspot-unthrottled]

For each app (json-server and Kinto as real processes; each SaaS simulator at its documented rate limit, and
`-unthrottled` with its limits lifted, see THROTTLES), N app records are pushed (`created`) and the push
outbox is drained the way the `push-outbox` flow does (same engine, same store, in this process) until no
push is pending: a throttled app defers pushes to its Retry-After. Then a second round updates every
record. After each round the whole source is listed, and every listed record goes through the echo check the
import's map step runs (`inlet.store.echo_ids`): a pushed record not recognised there would be delivered back
to the app, an echo leaked. Duplicates are the emails the source holds more than once. The table goes to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["INLET_EGRESS__ALLOW_HOSTS"] = '["127.0.0.1"]'

from pydantic import SecretStr  # noqa: E402

from bench.real_apps import start_json_server  # noqa: E402
from connectors.spec import RateLimit  # noqa: E402
from inlet.local import free_port, start_process, stop_process  # noqa: E402
from inlet.push import drain_pushes, open_push_runtime  # noqa: E402
from inlet.settings import EgressSettings, Settings  # noqa: E402
from inlet.store import (  # noqa: E402
    Heard,
    PushChange,
    Vault,
    add_connection,
    add_tenant,
    echo_ids,
    enqueue,
    ensure_key_file,
    open_store,
    push_counts,
)
from tests.support.real_apps import start_kinto  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
APPS = (
    "json_server,kinto,hubspot,hubspot-unthrottled,salesforce,salesforce-unthrottled,zendesk,zendesk-unthrottled,"
    "msgraph,msgraph-unthrottled,google_people,google_people-unthrottled,pipedrive,pipedrive-unthrottled"
)
# The simulator knobs that lift an app's documented write-path limits (`-unthrottled`, which lifts inlet's own
# budget too). Salesforce's daily allocation and Graph's quotas are far above a bench run: no knob needed.
THROTTLES = {
    "hubspot": ["--rate-limit", "1000000"],  # 190 requests / 10 s
    "zendesk": ["--rate-limit", "1000000"],  # 700 requests / minute
    "google_people": ["--write-quota-per-minute", "1000000", "--read-quota-per-minute", "1000000"],  # 90 / minute
    "pipedrive": ["--burst-limit", "1000000"],  # 20 requests / 2 s burst
}
DATA_SOURCES = {"msgraph": "contacts"}  # Graph writes the mailbox's contacts
BEGIN, END = "<!-- push:begin -->", "<!-- push:end -->"
TOKEN = "pat-na1-bench-token"


@dataclass
class Row:
    app: str
    records: int
    create_per_s: float
    update_per_s: float
    echoes_suppressed: int
    echoes_leaked: int
    duplicates: int
    failed: int


def _settings(home: Path, unthrottled: bool) -> Settings:
    """The bench's settings; `unthrottled` lifts inlet's own per-connection budget (connector.yaml's
    `rate_limit`, which keeps under the app's documented limit) along with the simulator's."""
    ensure_key_file(home / "secret.key")
    budget = RateLimit(requests=1_000_000, per_seconds=1) if unthrottled else None
    return Settings(home=home, egress=EgressSettings(allow_hosts=["127.0.0.1"]), source_budget=budget)


async def _round(settings: Settings, kind: str, records: int, tag: str, data_source: str) -> tuple[float, int]:
    engine = open_store(settings.store_url)
    changes = [
        PushChange(
            "acme",
            "acme-app",
            data_source,
            f"app-{i}",
            kind,
            {"email": f"p{i}@bench.org", "fullName": f"{tag} Person{i}"},
            f"{kind}-{i}",
        )
        for i in range(records)
    ]
    enqueue(engine, changes)
    run = open_push_runtime(settings, "acme", "acme-app", engine=engine)
    started = time.perf_counter()
    failed = 0
    while push_counts(engine, "acme-app").pending:
        result = await drain_pushes(run)
        failed += result.failed
        if not (result.written or result.unchanged or result.failed):
            await asyncio.sleep(0.2)  # deferred to the app's Retry-After: wait until a push is due again
    seconds = time.perf_counter() - started
    await run.aclose()
    return records / seconds, failed


async def _echo_check(settings: Settings, data_source: str) -> tuple[int, int, int]:
    """(suppressed, leaked, duplicates) over the whole listing of the source."""
    engine = open_store(settings.store_url)
    run = open_push_runtime(settings, "acme", "acme-app", engine=engine)
    heard: list[Heard] = []
    async for page in run.connector.pages(run.collection):
        for raw in page.records:
            heard.append(
                Heard(run.connector.record_id(run.collection, raw), raw, run.connector.updated_at(run.collection, raw))
            )
    await run.aclose()
    pushed = [h for h in heard if _email(h.raw) is not None]
    echoes = echo_ids(engine, "acme-app", data_source, pushed, window_seconds=3600)
    emails = Counter(_email(h.raw) for h in pushed)
    return len(echoes), len(pushed) - len(echoes), sum(n - 1 for n in emails.values() if n > 1)


def _email(raw: Any) -> str | None:
    """The bench address somewhere in a record, whatever the app calls the field."""
    if isinstance(raw, str):
        return raw if raw.endswith("@bench.org") else None
    values = raw.values() if isinstance(raw, Mapping) else raw if isinstance(raw, list) else []
    return next((found for value in values if (found := _email(value)) is not None), None)


async def _bench(
    app: str, parameters: dict[str, str], credentials: dict[str, str], records: int, home: Path, unthrottled: bool
) -> Row:
    settings = _settings(home, unthrottled)
    data_source = DATA_SOURCES.get(app, "users")
    engine = open_store(settings.store_url)
    add_tenant(engine, "acme")
    add_connection(
        engine,
        Vault.from_settings(settings),
        tenant_id="acme",
        connection_id="acme-app",
        app=app,
        parameters=parameters,
        credentials={k: SecretStr(v) for k, v in credentials.items()},
        data_source=data_source,
    )
    create_rate, failed = await _round(settings, "created", records, "New", data_source)
    update_rate, failed_updates = await _round(settings, "updated", records, "Renamed", data_source)
    suppressed, leaked, duplicates = await _echo_check(settings, data_source)
    return Row(app, records, create_rate, update_rate, suppressed, leaked, duplicates, failed + failed_updates)


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    for label in args.apps.split(","):
        app, _, unthrottled = label.partition("-")
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            proc: Any = None
            if app == "json_server":
                server = start_json_server(work / "js", 0)
                proc, params, creds = server.proc, {"base_url": server.base_url}, {}
            elif app == "kinto":
                kinto = start_kinto(work / "kinto")
                proc, params = kinto.proc, {"base_url": kinto.base_url, "collection": kinto.collection}
                creds = {"username": kinto.username, "password": kinto.password}
            else:
                proc, params, creds = _simulator(app, work, THROTTLES.get(app, []) if unthrottled else [])
            try:
                row = asyncio.run(_bench(app, params, creds, args.records, work / "home", bool(unthrottled)))
                row.app = label
                rows.append(row)
            finally:
                stop_process(proc)
            print(rows[-1])
    return rows


def _simulator(app: str, work: Path, knobs: list[str]) -> tuple[Any, dict[str, str], dict[str, str]]:
    """The app's simulator, empty, as a process; the connection parameters and credentials that reach it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", f"connectors.{app}.simulator", "--port", str(port), "--records", "0"]
    command += ["--token", TOKEN, "--deliver-every", "0", *knobs]
    if app == "msgraph":
        command += ["--contacts", "0"]
    proc = start_process(command, f"{url}/_sim/stats", log_path=work / "sim.log")
    make = importlib.import_module(f"connectors.{app}.simulator").make_simulator
    params, secrets = make(records=0, seed=0, token=TOKEN).connection(url)
    return proc, params, {k: v.get_secret_value() for k, v in secrets.items()}


def write_results(rows: list[Row], records: int, load: str) -> None:
    table = [
        f"{BEGIN}",
        f"Measured {date.today()} on the shared 2-core machine (`nice`, other helpers running; load average "
        f"{load}), {records} records per app, one connection, in-process drain until nothing is pending (up to "
        "4 writes in flight, one per record per batch; a batch's links, import stamps and outcomes go to the "
        "store in one go). A create is a write (Salesforce, Graph, Google People and Pipedrive look the listing "
        "up only after a lost create; HubSpot, json-server and Kinto look the email up first); an update is a "
        "read (conflict check) and a write. A plain row runs at inlet's own per-connection budget "
        "(connector.yaml `rate_limit`, kept under the app's documented limit) against the simulator at that "
        "limit; `-unthrottled` lifts both.",
        "",
        "| app | creates/s | updates/s | echoes suppressed | echoes leaked | duplicates | failed |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r.app} | {r.create_per_s:.1f} | {r.update_per_s:.1f} | {r.echoes_suppressed} | {r.echoes_leaked} "
            f"| {r.duplicates} | {r.failed} |"
            for r in rows
        ),
        f"{END}",
    ]
    text = RESULTS.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + "\n".join(table) + text[text.index(END) + len(END) :]
    else:
        text += "\n\n## Bi-directional sync: pushes (`bench/push.py`)\n\n" + "\n".join(table) + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--apps", default=APPS)
    args = parser.parse_args()
    before = _load()
    rows = run(args)
    write_results(rows, args.records, f"{before} at the start, {_load()} at the end")


def _load() -> str:
    """The 1, 5 and 15 minute load averages (`uptime`): the machine is shared."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
