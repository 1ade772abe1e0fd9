"""Incremental pulls driven by a collection's `changes:` spec (or its `changes` hook).

    first pull (no since):  GET path?params&initial_params        -> pages ..., last page gives `since`
    later pulls:            GET path?params&<since_param>=<since>  (or GET <since> when it is a URL)

Records matching the `deleted` rule become `deleted` changes, the others `upsert`s. An answer matching
the `expired` rule raises SinceExpired; `pull_all` then enumerates from scratch and says it resynced.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.base import Connector, PageGuard
from connectors.base_types import PageRequest
from connectors.changes import Change, ChangePage, ChangeSet
from connectors.errors import FatalError, MalformedPage, SinceExpired, error_for_response
from connectors.hints import marked_deleted
from connectors.pagination import PageView
from connectors.paths import MISSING, lookup
from connectors.spec import ChangesSpec, DeletionsSpec, PositionSpec

__all__ = ["change_pages", "pull_changes", "read_position"]

logger = logging.getLogger(__name__)


async def change_pages(connector: Connector, collection: str, since: str | None = None) -> AsyncIterator[ChangePage]:
    """The pages of one pull, each with its changes; the last one carries the next `since`.

    With `since_filters` the pull is one query per filter and, with `deletions`, one more of the deletions
    endpoint; they share the watermark, and only the very last page carries `since`.
    """
    if connector.hooks.changes is not None:
        async for page in connector.hooks.changes(connector, collection, since):
            yield page
        return
    spec = _spec(connector, collection)
    queries = _queries(connector, spec, since)
    watermark: list[str | None] = [since]
    for n, (first, source) in enumerate(queries):
        last_query = n == len(queries) - 1
        async for page in _query_pages(connector, collection, spec, source, first, watermark):
            if page.next is None and not last_query:
                page = ChangePage(changes=page.changes, next=None, since=None)
            yield page


async def _query_pages(
    connector: Connector,
    collection: str,
    spec: ChangesSpec,
    source: ChangesSpec | DeletionsSpec,
    first: PageRequest,
    watermark: list[str | None],
) -> AsyncIterator[ChangePage]:
    """The pages of one query: the changes endpoint (with one filter) or the deletions endpoint."""
    guard = PageGuard(connector.name, connector.spec.max_pages)
    request: PageRequest | None = first
    paths = _watermark_paths(spec) if isinstance(source, ChangesSpec) else [source.since_from_records]
    seen = 0
    while request is not None:
        guard.check(request)
        outgoing = connector.build(request)
        expiring = [status for rule in spec.expired for status in rule.status]
        response = await connector.send(connector.build(request), expiring)
        _raise_if_expired(connector, spec, response)
        body, records = connector.parse_page(
            response, source.records_path, connector.redact(request.url), optional=source.records_optional
        )
        seen += len(records)
        if isinstance(source, DeletionsSpec):
            changes = [_deletion(connector, collection, source, record) for record in records]
        else:
            changes = [_change(connector, collection, spec, record) for record in records]
        for path in paths:
            watermark[0] = _highest(watermark[0], (lookup(r, path, None) for r in records))
        view = PageView(body=body, records=records, seen=seen)
        nxt = None if source.paginator.is_last(view) else source.paginator.next_request(outgoing, response, view)
        request = PageRequest.from_httpx(nxt) if nxt is not None else None
        next_since = None if request is not None else _next_since(spec, body, watermark[0])
        yield ChangePage(changes=changes, next=request, since=next_since)


def _queries(
    connector: Connector, spec: ChangesSpec, since: str | None
) -> list[tuple[PageRequest, ChangesSpec | DeletionsSpec]]:
    """The first request of each query of one pull, and what answers it."""
    queries: list[tuple[PageRequest, ChangesSpec | DeletionsSpec]] = []
    if since is None or not spec.since_filters:
        queries.append((_first_request(connector, spec, since), spec))
    else:
        for where in spec.since_filters:
            params = {**spec.params, **where.params, where.param: since}
            request = connector.request(spec.method, spec.path, params, spec.json_body)
            queries.append((PageRequest.from_httpx(spec.paginator.first_request(request)), spec))
    if since is not None and (deletions := spec.deletions) is not None:
        request = connector.request("GET", deletions.path, {**deletions.params, deletions.since_param: since})
        queries.append((PageRequest.from_httpx(deletions.paginator.first_request(request)), deletions))
    return queries


def _watermark_paths(spec: ChangesSpec) -> list[str]:
    paths = [spec.since_from_records] if spec.since_from_records else []
    return paths + [f.from_records for f in spec.since_filters if f.from_records and f.from_records not in paths]


async def pull_changes(connector: Connector, collection: str, since: str | None = None) -> ChangeSet:
    """A whole pull with one change per record (its latest); an expired token becomes a full resync."""
    result = ChangeSet()
    try:
        await _collect(connector, collection, since, result)
    except SinceExpired as exc:
        logger.warning("%s; enumerating %s from scratch", exc, collection)
        result = ChangeSet(resynced=True)
        await _collect(connector, collection, None, result)
    return result


async def read_position(connector: Connector, collection: str, now: datetime | None = None) -> str | None:
    """Where the collection's change source stands now, as a `since` (None: the app gives no position).

    A full import reads it before enumerating; once the import completes it becomes the first poll's `since`,
    so every change made during or after the import, deletions included, is pulled by that poll.
    """
    position = connector.collection(collection).position
    if position is None:
        return None
    if position.type == "start_time":
        return _formatted((now or datetime.now(UTC)) - timedelta(seconds=position.margin_seconds), position)
    request = connector.request("GET", position.path or "", position.params)
    response = await connector.send(request)
    url = connector.redact(str(request.url))
    value: str | None
    if position.since_header is not None:
        value = str(response.headers.get(position.since_header, "")).strip().strip('"') or None
    else:
        found = lookup(connector.read_json(response, url), position.since_path or "", None)
        value = None if found in (None, "", MISSING) else str(found)
    if value is None:
        raise FatalError(f"{connector.name}: {url} gave no change position", connector=connector.name, url=url)
    return value


def _formatted(moment: datetime, position: PositionSpec) -> str:
    moment = moment.astimezone(UTC)
    if position.format == "epoch_ms":
        return str(int(moment.timestamp() * 1000))
    if position.format == "epoch_s":
        return str(int(moment.timestamp()))
    if position.format == "iso_ms_z":
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def _collect(connector: Connector, collection: str, since: str | None, into: ChangeSet) -> None:
    latest: dict[str, Change] = {}
    async for page in change_pages(connector, collection, since):
        for change in page.changes:
            latest.pop(change.external_id, None)  # re-insert: the order follows each record's last change
            latest[change.external_id] = change
        if page.since is not None:
            into.since = page.since
    into.changes = list(latest.values())


def _spec(connector: Connector, collection: str) -> ChangesSpec:
    spec = connector.collection(collection).changes
    if spec is None:
        raise FatalError(
            f"{connector.name}.{collection} has no incremental API (no `changes:` and no changes hook); "
            "use full imports with deletion sweeps instead",
            connector=connector.name,
        )
    return spec


def _first_request(connector: Connector, spec: ChangesSpec, since: str | None) -> PageRequest:
    if since is not None and spec.since_is_url:
        return PageRequest(method="GET", url=since)
    params = dict(spec.params)
    if since is None:
        params.update(spec.initial_params)
    elif spec.since_param:
        params[spec.since_param] = since
    request = connector.request(spec.method, spec.path, params, spec.json_body)
    return PageRequest.from_httpx(spec.paginator.first_request(request))


def _raise_if_expired(connector: Connector, spec: ChangesSpec, response: httpx.Response) -> None:
    rules = [rule for rule in spec.expired if response.status_code in rule.status]
    if not rules:
        return
    if any(rule.body_contains is None or rule.body_contains in response.text for rule in rules):
        raise SinceExpired(
            f"{connector.name}: the stored incremental token was refused ({response.status_code}); "
            "a full resync follows",
            connector=connector.name,
        )
    error = error_for_response(response, connector=connector.name)
    if error is not None:
        raise error


def _change(connector: Connector, collection: str, spec: ChangesSpec, record: dict[str, Any]) -> Change:
    external_id = connector.record_id(collection, record)
    if marked_deleted(spec.deleted, record):
        return Change("deleted", external_id, None, connector.updated_at(collection, record))
    return Change("upsert", external_id, record, connector.updated_at(collection, record))


def _deletion(connector: Connector, collection: str, spec: DeletionsSpec, entry: dict[str, Any]) -> Change:
    """A deletions-log entry as the deletion of the record it names."""
    found = lookup(entry, spec.id_path, None)
    if found in (None, "", MISSING) or isinstance(found, dict | list | bool):
        raise MalformedPage(
            f"{connector.name}: a {collection} deletions entry has no id at {spec.id_path!r}; check deletions.id_path",
            connector=connector.name,
        )
    return Change("deleted", str(found), None)


def _highest(current: str | None, values: Any) -> str | None:
    best: Any = current
    for value in values:
        if value in (None, MISSING):
            continue
        if best is None or _key(value) > _key(best):
            best = value
    return None if best is None else str(best)


def _key(value: Any) -> tuple[int, float, str]:
    text = str(value)
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _next_since(spec: ChangesSpec, body: Any, watermark: str | None) -> str | None:
    if spec.since_path:
        value = lookup(body, spec.since_path, None)
        return None if value in (None, "", MISSING) else str(value)
    return watermark
