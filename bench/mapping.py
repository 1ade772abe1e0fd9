"""Mapping speed on one core: raw record -> UDM -> app record, with the shipped connectors and users.yaml.

.venv/bin/python bench/mapping.py [--records 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.registry import load  # noqa: E402
from mappings import RecordMapper, effective_mapping  # noqa: E402


def json_server_record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "email": f"user{i}@example.org",
        "name": f"User {i}",
        "age": 20 + i % 50,
        "createdAt": 1795540442239,
        "updatedAt": 1795540442239,
    }


def hubspot_record(i: int) -> dict[str, Any]:
    stamp = "2024-05-01T12:00:03.512Z"
    properties = {
        "email": f"ada{i}@example.org",
        "firstname": "Ada",
        "lastname": f"Lovelace{i}",
        "phone": None,
        "company": "Analytical Engines",
        "jobtitle": "Engineer",
        "createdate": stamp,
        "lastmodifieddate": stamp,
    }
    return {
        "id": str(10_000_000_000 + i),
        "properties": properties,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def measure(app: str, make: Any, records: int) -> float:
    spec, _ = load(app)
    collection = spec.collection_for("users")
    mapper = RecordMapper(
        data_source="users",
        udm_fields=spec.collections[collection].udm_fields,
        app_mapping=effective_mapping("users", app=app),
        origin=app,
    )
    raws = [make(i) for i in range(records)]
    started = time.perf_counter()
    for raw in raws:
        mapper.map(raw)
    return records / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    records = parser.parse_args().records
    for app, make in (("json_server", json_server_record), ("hubspot", hubspot_record)):
        rate = measure(app, make, records)
        print(f"{app:12} {records:,} records: {rate:,.0f} records/s, {1e6 / rate:.1f} µs per record")


if __name__ == "__main__":
    main()
