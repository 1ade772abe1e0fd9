"""Salesforce's throttling and incremental pulls, which its YAML cannot express.

* Throttling is a 403 `REQUEST_LIMIT_EXCEEDED`, which the usual mapping takes for refused credentials.
* A pull is a SOQL query with its watermark inside `q`, plus the separate `sobjects/<Object>/deleted/`
  resource, because deleted rows vanish from `query`. The token is the UTC second the pull began
  (`2024-05-01T12:00:03Z`, also a SOQL datetime literal); the next pull reads from a few minutes before it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import orjson

from connectors.base_types import PageRequest
from connectors.changes import Change, ChangePage
from connectors.errors import (
    ConnectorError,
    FatalError,
    MalformedPage,
    RequestRejected,
    RetryableError,
    SinceExpired,
)

if TYPE_CHECKING:
    from connectors.base import Connector

__all__ = ["DAILY_LIMIT_WAIT", "LOOKBACK", "changes", "classify_error"]

LOOKBACK = timedelta(minutes=5)  # a row's SystemModstamp is taken before its transaction commits
DAILY_LIMIT_WAIT = 3600.0  # the daily allocation frees up over a rolling 24 h; the flow retries, not this request
_SOQL = re.compile(
    r"^\s*(?P<select>SELECT\s.+?\sFROM\s+(?P<object>\w+))(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s.+?)?(?:\s+LIMIT\s+\d+)?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def classify_error(response: httpx.Response) -> ConnectorError | None:
    """403 REQUEST_LIMIT_EXCEEDED is a rate limit, not refused credentials, and Salesforce sends no Retry-After.

    The spent daily allocation (`TotalRequests`, or `Sforce-Limit-Info` at its maximum) waits an hour, longer
    than an in-process retry sleeps, so the flow retries later; the concurrency limit clears in seconds: back off.
    """
    errors = _errors(response)
    if response.status_code != 403 or "REQUEST_LIMIT_EXCEEDED" not in errors:
        return None
    message = errors["REQUEST_LIMIT_EXCEEDED"]
    usage = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
    spent = "TotalRequests" in message or (usage is not None and int(usage[1]) >= int(usage[2]))
    wait = DAILY_LIMIT_WAIT if spent else None
    url = str(response.request.url.copy_with(query=None))
    return RetryableError(
        f"salesforce: {response.request.method} {url} answered 403 REQUEST_LIMIT_EXCEEDED ({message}); "
        f"will retry{f' after {wait:.0f}s' if wait else ' with backoff'}",
        connector="salesforce",
        url=url,
        retry_after=wait,
        status=429,  # a refusal before any work, like a 429
    )


async def changes(connector: Connector, collection: str, since: str | None) -> AsyncIterator[ChangePage]:
    """Deletions from `deleted/` first (a later undelete then wins), then the SOQL rows changed since `since`.

    `since` older than the delete log (15 days, or a purge: `earliestDateAvailable`) raises SinceExpired.
    """
    started = datetime.now(UTC).replace(microsecond=0)
    listing = connector.collection(collection).list
    soql = _SOQL.match(listing.params.get("q", ""))
    if soql is None:
        raise FatalError(f"{connector.name}.{collection}: list.params.q is not a SOQL SELECT", connector=connector.name)
    watermark = None if since is None else _parse_since(connector, since)
    request = PageRequest.from_httpx(connector.request("GET", listing.path, {"q": _changed_since(soql, watermark)}))
    next_since = started
    if watermark is not None:
        deleted, covered = await _deletions(connector, soql["object"], watermark, started)
        next_since = min(started, covered or started)
        yield ChangePage(deleted, next=request)
    async for page in connector.pages(collection, request):
        upserts = [
            Change("upsert", connector.record_id(collection, r), r, connector.updated_at(collection, r))
            for r in page.records
        ]
        yield ChangePage(upserts, page.next, None if page.next else _literal(next_since))


def _changed_since(soql: re.Match[str], watermark: datetime | None) -> str:
    where = [f"({soql['where']})"] if soql["where"] else []
    if watermark is not None:
        where.append(f"SystemModstamp >= {_literal(watermark - LOOKBACK)}")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"{soql['select']}{clause} ORDER BY SystemModstamp, Id"  # Id breaks the many SystemModstamp ties


async def _deletions(
    connector: Connector, sobject: str, since: datetime, now: datetime
) -> tuple[list[Change], datetime | None]:
    """The deleted ids since `since`, and the `latestDateCovered` the next window must start from."""
    end = now.replace(second=0) + timedelta(minutes=1)  # the API ignores seconds: cover the current minute
    params = {"start": (since - LOOKBACK).isoformat(), "end": end.isoformat()}
    request = connector.request("GET", f"/services/data/{{api_version}}/sobjects/{sobject}/deleted/", params)
    response = await connector.send(request, accept=(400,))
    url = connector.redact(str(request.url))
    if response.status_code == 400:
        if "INVALID_REPLICATION_DATE" in _errors(response):
            raise SinceExpired(
                f"{connector.name}: {sobject} deletions since {since} are no longer kept (15 days at most); "
                "a full resync follows",
                connector=connector.name,
                url=url,
            )
        detail = connector.redact(response.text[:4096])[:300]  # redacted, then cut: no secret's head is kept
        raise RequestRejected(f"{connector.name}: {url} answered 400: {detail}", connector=connector.name)
    body = connector.read_json(response, url)
    if not isinstance(body, dict):
        raise MalformedPage(
            f"{connector.name}: {url} is not a deleted/ result object", connector=connector.name, url=url
        )
    earliest = _parse(body.get("earliestDateAvailable"))
    if earliest is not None and earliest >= since:
        raise SinceExpired(
            f"{connector.name}: the {sobject} delete log was purged up to {earliest}, after {since}; "
            "deletions may be lost, so a full resync follows",
            connector=connector.name,
            url=url,
        )
    deleted = [
        Change("deleted", str(r["id"]), None, r.get("deletedDate"))
        for r in body.get("deletedRecords", [])
        if isinstance(r, dict) and r.get("id")
    ]
    return deleted, _parse(body.get("latestDateCovered"))


def _parse_since(connector: Connector, since: str) -> datetime:
    moment = _parse(since)
    if moment is None:
        raise SinceExpired(
            f"{connector.name}: {since!r} is not a token this connector handed out; a full resync follows",
            connector=connector.name,
        )
    return moment


def _parse(value: object) -> datetime | None:
    """An aware datetime from `2024-05-01T12:00:03Z` or Salesforce's `2024-05-01T12:00:03.000+0000`."""
    try:
        moment = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _literal(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _errors(response: httpx.Response) -> dict[str, str]:
    """errorCode -> message from Salesforce's error array `[{"message": ..., "errorCode": ...}]`."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(body, list):
        return {}
    return {str(e.get("errorCode")): str(e.get("message", "")) for e in body if isinstance(e, dict)}
