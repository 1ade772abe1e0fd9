"""`inlet connectors check`: the contract checks that are safe against a live account (no fault injection).

Lists the whole users collection (every id exactly once, no loop), fetches one record and a missing one,
and runs two incremental pulls. Read-only: it changes nothing in the app.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from connectors.base import Connector
from connectors.errors import ConnectorError
from connectors.incremental import pull_changes

__all__ = ["CheckResult", "run_checks"]

_MISSING_ID = "inlet-check-no-such-record-0"


def _missing_like(known: list[str]) -> str:
    """An id no record has, shaped like the app's ids (numeric apps reject other ids with a 400)."""
    numeric = [int(i) for i in known if i.isdigit()]
    if numeric and len(numeric) == len(known):
        return str(max(numeric) + 1_000_000)
    return _MISSING_ID


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


async def run_checks(connector: Connector, collection: str) -> list[CheckResult]:
    """Every check, in order; a failing check is reported and the later ones still run when they can."""
    results: list[CheckResult] = []
    ids: list[str] = []

    async def listing() -> str:
        async for page in connector.pages(collection):
            ids.extend(connector.record_id(collection, r) for r in page.records)
        repeated = [i for i, n in Counter(ids).items() if n > 1]
        if repeated:
            raise AssertionError(f"{len(repeated)} ids came more than once, e.g. {repeated[:3]}")
        return f"{len(ids)} records, each once"

    async def get_one() -> str:
        if not ids:
            return "skipped: the collection is empty"
        record = await connector.get(collection, ids[0])
        if record is None or connector.record_id(collection, record) != ids[0]:
            raise AssertionError(f"get({ids[0]!r}) did not return that record")
        return f"get({ids[0]!r}) returned it"

    async def get_missing() -> str:
        missing = _missing_like(ids)
        if await connector.get(collection, missing) is not None:
            raise AssertionError(f"get({missing!r}) returned a record")
        return f"get({missing!r}) of a missing id gives None"

    async def changes() -> str:
        if connector.collection(collection).changes is None and connector.hooks.changes is None:
            return "skipped: no incremental API (full imports with deletion sweeps)"
        first = await pull_changes(connector, collection)
        if not first.since:
            raise AssertionError("the first pull handed out no token for the next one")
        again = await pull_changes(connector, collection, first.since)
        return f"first pull {len(first.changes)} changes; a pull since its token {len(again.changes)} changes"

    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("list", listing),
        ("get", get_one),
        ("get missing", get_missing),
        ("changes", changes),
    ]
    for name, check in checks:
        started = time.perf_counter()
        try:
            detail, ok = await check(), True
        except (ConnectorError, AssertionError) as exc:
            detail, ok = connector.redact(str(exc)), False
        results.append(CheckResult(name, ok, detail, time.perf_counter() - started))
    return results
