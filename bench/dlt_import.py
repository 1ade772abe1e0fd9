"""The dlt comparator: dlt's `rest_api` source over the same source, into the same demo app, in a process of its own.

    .venv/bin/python bench/dlt_import.py --source json_server --base-url URL --app-url URL [--token T]

dlt (`pip install -e '.[bench]'`) lists the source with its `rest_api` source (json-server: `header_link`
paginator, page 1,000; the HubSpot simulator: `cursor` on `paging.next.after`, page 100) and a
`@dlt.destination` sink of 1,000 items per call POSTs them to the demo app as one signed batch per the delivery
contract (DESIGN.md), each record mapped to the app's fields by plain Python, as a dlt user would write it.
There is no ledger, outbox or checkpoint: a record is created once, keyed by its id. The signing secret comes
from INLET_DEMO_APP_SECRET. Prints one JSON line: records, seconds (pipeline.run only) and the process's CPU
seconds during it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402

from inlet.delivery import sign_headers  # noqa: E402

Record = dict[str, Any]


def _json_server_user(item: Record) -> Record:
    return {"email": item.get("email"), "fullName": item.get("name"), "sourceUpdatedAt": item.get("updatedAt")}


def _hubspot_contact(item: Record) -> Record:
    properties = item.get("properties") or {}
    first, last = properties.get("firstname"), properties.get("lastname")
    return {
        "email": properties.get("email"),
        "fullName": " ".join(part for part in (first, last) if part) or None,
        "firstName": first,
        "lastName": last,
        "phone": properties.get("phone"),
        "company": properties.get("company"),
        "title": properties.get("jobtitle"),
        "active": not item.get("archived", False),
        "sourceUpdatedAt": item.get("updatedAt"),
    }


def _config(source: str, base_url: str, token: str | None) -> dict[str, Any]:
    """The rest_api source's configuration for the same requests inlet sends."""
    if source == "json_server":
        client: dict[str, Any] = {"base_url": base_url, "paginator": {"type": "header_link"}}
        endpoint: dict[str, Any] = {"path": "users", "params": {"_page": 1, "_limit": 1000}}
    else:
        client = {
            "base_url": base_url,
            "auth": {"type": "bearer", "token": token},
            "paginator": {"type": "cursor", "cursor_path": "paging.next.after", "cursor_param": "after"},
        }
        endpoint = {"path": "crm/v3/objects/contacts", "params": {"limit": 100}, "data_selector": "results"}
    return {"client": client, "resources": [{"name": "users", "endpoint": endpoint, "primary_key": "id"}]}


def _sink(app_url: str, secret: str, connection: str, mapper: Callable[[Record], Record], posted: list[int]) -> Any:
    """A dlt destination that POSTs each batch of items to the demo app; `posted` counts the records it took."""
    import dlt
    from dlt.common.schema import TTableSchema
    from dlt.common.typing import TDataItems

    client = httpx.Client(timeout=60)

    def demo_app(items: TDataItems, table: TTableSchema) -> None:
        events = [
            {
                "event_id": f"evt_dlt_{item['id']}",
                "type": "created",
                "external_id": str(item["id"]),
                "record": mapper(item),
                "idempotency_key": f"dlt-{connection}-{item['id']}",
            }
            for item in items
        ]
        body = orjson.dumps({"tenant": "bench", "connection": connection, "data_source": "users", "events": events})
        msg_id = f"msg_dlt_{events[0]['external_id']}_{len(events)}"
        headers = sign_headers([secret], msg_id=msg_id, timestamp=int(time.time()), body=body)
        headers["content-type"] = "application/json"
        client.post(f"{app_url}/inlet/events", content=body, headers=headers).raise_for_status()
        posted.append(len(events))

    # called, not used as a decorator: mypy without the bench extra would find the decorator untyped
    return dlt.destination(demo_app, batch_size=1000, name="demo_app", naming_convention="direct", max_table_nesting=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["json_server", "hubspot"], default="json_server")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--app-url", required=True)
    parser.add_argument("--token", default=None)
    parser.add_argument("--folder", type=Path, default=ROOT / "bench" / "out" / "dlt")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    mapper = _json_server_user if args.source == "json_server" else _hubspot_contact
    posted: list[int] = []
    sink = _sink(args.app_url, os.environ["INLET_DEMO_APP_SECRET"], "dlt-src", mapper, posted)
    pipeline = dlt.pipeline(pipeline_name="bench_dlt", destination=sink, pipelines_dir=str(args.folder))
    source = rest_api_source(cast(Any, _config(args.source, args.base_url, args.token)))  # a RESTAPIConfig
    cpu, started = time.process_time(), time.perf_counter()
    info = pipeline.run(source)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    info.raise_on_failed_jobs()
    print(orjson.dumps({"records": sum(posted), "seconds": seconds, "cpu_seconds": cpu}).decode())


if __name__ == "__main__":
    main()
