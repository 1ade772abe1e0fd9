"""Mapping speed on one core: the compiled mappings against the same mappings written as plain Python.

.venv/bin/python bench/mapping.py [--records 100000]

Two measures, each on the same records in the same run:
- app mapping: the default users mapping (users.yaml, 9 fields) from a UDM record to the app record;
- full path: raw HubSpot contact -> UDM (connector udm_fields, pydantic) -> app record.
The plain-Python versions do the same steps by hand (the full path keeps the same pydantic UDM).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.registry import load  # noqa: E402
from mappings import RecordMapper, effective_mapping  # noqa: E402
from mappings.udm import User  # noqa: E402


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


def app_record(udm: dict[str, Any]) -> dict[str, Any]:
    """users.yaml as plain Python."""
    return {
        "email": udm["email"],
        "fullName": udm["full_name"],
        "firstName": udm["first_name"],
        "lastName": udm["last_name"],
        "phone": udm["phone"],
        "company": udm["company"],
        "title": udm["title"],
        "active": udm["active"],
        "sourceUpdatedAt": udm["updated_at"],
    }


def hubspot_udm(raw: dict[str, Any]) -> dict[str, Any]:
    """The HubSpot connector's udm_fields as plain Python."""
    p = raw["properties"]
    return {
        "id": raw["id"],
        "email": p["email"],
        "first_name": p["firstname"],
        "last_name": p["lastname"],
        "phone": p["phone"],
        "company": p["company"],
        "title": p["jobtitle"],
        "active": not raw["archived"],
        "created_at": raw["createdAt"],
        "updated_at": raw["updatedAt"],
    }


def plain_full(raw: dict[str, Any]) -> dict[str, Any]:
    context = User.model_validate(hubspot_udm(raw)).__dict__.copy()
    context["raw"] = raw
    return app_record(context)


def rates(compiled: Callable[[Any], Any], plain: Callable[[Any], Any], items: list[Any]) -> tuple[float, float]:
    """Records per second of each, the best of five alternating passes (the machine is shared)."""
    best = {compiled: float("inf"), plain: float("inf")}
    for _ in range(5):
        for function in (compiled, plain):
            started = time.perf_counter()
            for item in items:
                function(item)
            best[function] = min(best[function], time.perf_counter() - started)
    return len(items) / best[compiled], len(items) / best[plain]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    records = parser.parse_args().records
    spec, _ = load("hubspot")
    mapping = effective_mapping("users", app="hubspot")
    mapper = RecordMapper(
        data_source="users", udm_fields=spec.collections["contacts"].udm_fields, app_mapping=mapping, origin="hubspot"
    )
    raws = [hubspot_record(i) for i in range(records)]
    contexts = [{**User.model_validate(hubspot_udm(r)).__dict__, "raw": r} for r in raws]
    assert mapper.map(raws[0]) == plain_full(raws[0]) and mapping.render(contexts[0]) == app_record(contexts[0])
    for name, compiled, plain, items in (
        ("app mapping (users.yaml, 9 fields)", mapping.render, app_record, contexts),
        ("full path, raw HubSpot -> UDM -> app", mapper.map, plain_full, raws),
    ):
        fast, slow = rates(compiled, plain, items)
        print(
            f"{name:38} compiled {fast:>10,.0f} rec/s ({1e6 / fast:5.1f} µs)   "
            f"plain Python {slow:>10,.0f} rec/s ({1e6 / slow:5.1f} µs)   ratio {fast / slow:.2f}"
        )


if __name__ == "__main__":
    main()
