"""`inlet connectors check`: the contract checks that are safe against a live account (no fault injection).

Lists the whole users collection (every id exactly once, no loop), fetches one record and a missing one,
and runs two incremental pulls. Read-only unless given a `SourceWriter`: then the changes check makes a
create, an update and a delete at the source between the two pulls and fails unless the second pull shows
each of them (a `changes:` spec that misses creates or deletions fails here, not in production).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from connectors.base import Connector
from connectors.changes import ChangeSet
from connectors.errors import ConnectorError
from connectors.incremental import pull_changes

__all__ = ["CheckResult", "SimulatorWriter", "SourceWriter", "run_checks"]


class SourceWriter(Protocol):
    """Makes changes at the source for the changes check: a simulator's control API, or the app's write API."""

    async def create(self) -> str:
        """Create a record; its external id."""
        ...

    async def update(self, external_id: str) -> None: ...

    async def delete(self, external_id: str) -> None: ...


class SimulatorWriter:
    """A `SourceWriter` over a simulator's `/_sim/mutate` (served, or in-process through an ASGI transport)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client, self._url = client, base_url.rstrip("/") + "/_sim/mutate"

    async def create(self) -> str:
        created: list[str] = (await self._mutate({"create": 1}))["created"]
        return created[0]

    async def update(self, external_id: str) -> None:
        await self._mutate({"update": [external_id]})

    async def delete(self, external_id: str) -> None:
        await self._mutate({"delete": [external_id]})

    async def _mutate(self, body: dict[str, object]) -> dict[str, list[str]]:
        response = await self._client.post(self._url, json=body)
        if response.status_code != 200:
            raise AssertionError(f"the simulator refused {body}: {response.status_code} {response.text[:200]}")
        answer: dict[str, list[str]] = response.json()
        return answer


_MISSING_ID = "inlet-check-no-such-record-0"


def _missing_like(known: list[str]) -> str:
    """An id no record has, shaped like the app's ids (numeric apps reject other ids with a 400)."""
    numeric = [int(i) for i in known if i.isdigit()]
    if numeric and len(numeric) == len(known):
        return str(max(numeric) + 1_000_000)
    return _MISSING_ID


def _made_changes_seen(pulled: ChangeSet, created: str, updated: str, deleted: str) -> str:
    """The changes the check made at the source, each as it must show in the pull since the token before them."""
    upserts = {c.external_id for c in pulled.changes if c.kind == "upsert"}
    deletions = {c.external_id for c in pulled.changes if c.kind == "deleted"}
    missed = []
    if created not in upserts:
        missed.append(
            f"the record created at the source ({created}) is not among them: the spec misses creates "
            "(an API whose `updated` is null until the first edit needs `since_filters` with a created-since filter)"
        )
    if updated not in upserts:
        missed.append(f"the record updated at the source ({updated}) is not among them: the spec misses updates")
    if deleted not in deletions and not pulled.resynced:
        missed.append(
            f"the record deleted at the source ({deleted}) is not among them as deleted: the spec misses deletions "
            "(a `deleted:` rule for tombstones, or a `deletions:` endpoint such as an activity log)"
        )
    if missed:
        raise AssertionError(f"{len(pulled.changes)} changes since the token; " + "; ".join(missed))
    return f"a create, an update and a delete made at the source ({created}, {updated}, {deleted}) all came in"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


async def run_checks(connector: Connector, collection: str, source: SourceWriter | None = None) -> list[CheckResult]:
    """Every check, in order; a failing check is reported and the later ones still run when they can.

    With `source`, the changes check creates, updates and deletes a record at the source (see the module)."""
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
        chosen = ids[:2]
        while source is not None and len(chosen) < 2:  # an update and a delete need two records
            chosen.append(await source.create())
        first = await pull_changes(connector, collection)
        if not first.since:
            raise AssertionError("the first pull handed out no token for the next one")
        if source is None:
            again = await pull_changes(connector, collection, first.since)
            return (
                f"first pull {len(first.changes)} changes; a pull since its token {len(again.changes)} changes "
                "(read-only: creates, updates and deletes not proven)"
            )
        created = await source.create()
        await source.update(chosen[0])
        await source.delete(chosen[1])
        again = await pull_changes(connector, collection, first.since)
        return _made_changes_seen(again, created, chosen[0], chosen[1])

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
