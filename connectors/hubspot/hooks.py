"""What HubSpot's YAML cannot say: 429 policies named in the body, incremental pulls through the CRM search
(with its 10,000-result cap) plus the archived listing, and v1/v2/v3 webhook signatures over array payloads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from connectors.base import Connector, PageGuard, PageRequest, to_iso
from connectors.changes import Change, ChangePage
from connectors.errors import WebhookRejected
from connectors.webhooks import WebhookEvent, WebhookRequest, signatures_match

__all__ = ["changes", "parse_webhook", "retry_after", "verify_webhook", "webhook_account"]

_DAY_SECONDS = 86_400.0
_SEARCH_LIMIT = 200  # the search endpoint's page-size cap
_SEARCH_CAP = 10_000  # results one search query can page through
_MODIFIED, _OBJECT_ID = "lastmodifieddate", "hs_object_id"
_MAX_SKEW_SECONDS = 300  # a v3 signature more than five minutes from now, either way, is refused
_URI_ESCAPES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
                "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}  # fmt: skip
_ESCAPED = re.compile("|".join(_URI_ESCAPES), re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1)
_UPSERTS = frozenset({"creation", "propertyChange", "restore"})
_DELETIONS = frozenset({"deletion", "privacyDeletion"})


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429, from the policy named in the body (as HubSpot's own SDK does).

    TEN_SECONDLY_ROLLING waits one window (from X-HubSpot-RateLimit-Interval-Milliseconds, default 10 s);
    the search "secondly" limit waits 1 s; DAILY waits a day, longer than any in-process retry.
    """
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("policyName") == "DAILY":
        return _DAY_SECONDS
    if body.get("policyName") == "TEN_SECONDLY_ROLLING":
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
        return int(interval) / 1000 if interval.isdigit() else 10.0
    if "secondly" in str(body.get("message", "")):
        return 1.0
    return None


# -- incremental pulls -----------------------------------------------------------------------------


async def changes(connector: Connector, collection: str, since: str | None) -> AsyncIterator[ChangePage]:
    """Contacts modified after `since` (epoch ms), then those archived after it; the next `since` is the
    highest lastmodifieddate/archivedAt seen. HubSpot has no change feed: the search is a POST with the
    watermark in its body, restarted before the 10,000-result cap, and deletions come from a second listing.
    """
    listing = connector.collection(collection).list
    properties = sorted({*listing.params.get("properties", "").split(","), _MODIFIED} - {""})
    watermark = None if since is None else _ms(since)
    highest = watermark
    async for records in _modified_after(connector, listing.path + "/search", properties, watermark):
        highest = max([highest or 0, *map(_modified, records)])
        upserts = [
            Change("upsert", connector.record_id(collection, r), r, connector.updated_at(collection, r))
            for r in records
        ]
        yield ChangePage(changes=upserts, next=None)
    async for page in connector.pages(collection, _archived_listing(connector, collection)):
        gone = [r for r in page.records if r.get("archivedAt") and _ms(r["archivedAt"]) > (watermark or -1)]
        highest = max([highest or 0, *(_ms(r["archivedAt"]) for r in gone)])
        if watermark is not None:  # a first pull lists what exists: the archive only moves its watermark
            yield ChangePage(changes=[_deletion(connector, collection, r) for r in gone], next=None)
    yield ChangePage(changes=[], next=None, since=str(highest or 0))


async def _modified_after(
    connector: Connector, path: str, properties: list[str], watermark: int | None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Live contacts modified after `watermark` (all of them when None), oldest first, each once.

    Near the cap the search restarts from the last timestamp seen (GTE) and drops the ids it already
    returned at that timestamp; a whole query at one timestamp is walked by hs_object_id instead.
    """
    bound, op, done = watermark, "GT", frozenset[str]()
    while True:
        filters = [] if bound is None else [_filter(_MODIFIED, op, bound)]
        query, first, last, at_last = _Query(properties, filters, _MODIFIED), None, None, set[str]()
        async for records in query.pages(connector, path):
            for record in records:
                stamp = _modified(record)
                first = stamp if first is None else first
                if stamp != last:
                    last, at_last = stamp, set()
                at_last.add(record["id"])
            yield [r for r in records if r["id"] not in done]
        if not query.cut or last is None:
            return
        if first == last:
            async for records in _modified_at(connector, path, properties, last, at_last | done):
                yield records
            bound, op, done = last, "GT", frozenset()
        else:
            bound, op, done = last, "GTE", frozenset(at_last)


async def _modified_at(
    connector: Connector, path: str, properties: list[str], stamp: int, done: set[str]
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every contact modified at exactly `stamp` but not in `done`, walked by hs_object_id (the spec's tie-break)."""
    after_id: str | None = None
    while True:
        filters = [_filter(_MODIFIED, "EQ", stamp)] + ([_filter(_OBJECT_ID, "GT", after_id)] if after_id else [])
        query = _Query(properties, filters, _OBJECT_ID)
        async for records in query.pages(connector, path):
            after_id = records[-1]["id"] if records else after_id
            yield [r for r in records if r["id"] not in done]
        if not query.cut:
            return


class _Query:
    """One search, paged with `after` until its end, or `cut` short before the next page passes the cap."""

    def __init__(self, properties: list[str], filters: list[dict[str, str]], sort: str) -> None:
        self.body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}] if filters else [],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": properties,
            "limit": _SEARCH_LIMIT,
        }
        self.cut = False

    async def pages(self, connector: Connector, path: str) -> AsyncIterator[list[dict[str, Any]]]:
        guard, after, count = PageGuard(connector.name, connector.spec.max_pages), None, 0
        while True:
            request = connector.request("POST", path, json={**self.body, **({"after": after} if after else {})})
            guard.check(PageRequest.from_httpx(request))
            url = connector.redact(str(request.url))
            body, records = connector.parse_page(await connector.send(request), "results", url)
            count += len(records)
            yield records
            after = (body.get("paging") or {}).get("next", {}).get("after")
            if after is None:
                return
            if count + _SEARCH_LIMIT > _SEARCH_CAP:
                self.cut = True
                return


def _deletion(connector: Connector, collection: str, record: dict[str, Any]) -> Change:
    return Change("deleted", connector.record_id(collection, record), None, to_iso(record["archivedAt"]))


def _archived_listing(connector: Connector, collection: str) -> PageRequest:
    """The collection's listing with archived=true: only archived contacts, each with archivedAt."""
    first = connector.first_request(collection)
    return PageRequest(first.method, str(httpx.URL(first.url).copy_set_param("archived", "true")), first.body)


def _filter(name: str, op: str, value: int | str) -> dict[str, str]:
    return {"propertyName": name, "operator": op, "value": str(value)}


def _modified(record: dict[str, Any]) -> int:
    return _ms(record.get("properties", {}).get(_MODIFIED) or record.get("updatedAt"))


def _ms(value: Any) -> int:
    """Epoch milliseconds from epoch ms or an ISO-8601 time (HubSpot writes `2024-04-30T09:12:44.117Z`)."""
    text = str(value)
    if text.isdigit():
        return int(text)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when.replace(tzinfo=None) - (when.utcoffset() or timedelta()) - _EPOCH) // timedelta(milliseconds=1)


# -- webhooks --------------------------------------------------------------------------------------


def verify_webhook(request: WebhookRequest, secret: str, now: float) -> None:
    """v3: base64 HMAC-SHA256 of method + URI + body + timestamp, within five minutes of now either way (a
    timestamp from the future is no fresher); apps on the older schemes send only X-HubSpot-Signature, a hex
    SHA-256 of secret + body (v1) or of secret + method + URI + body (v2), which never expires: the receiver
    refuses their replays by body and event id. YAML has no signature schemes."""
    headers = request.headers
    if (signature := headers.get("X-HubSpot-Signature-v3")) is not None:
        timestamp = headers.get("X-HubSpot-Request-Timestamp", "")
        if not timestamp.isdigit():
            raise WebhookRejected("hubspot: a v3 webhook without X-HubSpot-Request-Timestamp", connector="hubspot")
        _check_fresh(int(timestamp) / 1000, now)
        uri = _ESCAPED.sub(lambda m: _URI_ESCAPES[m.group().upper()], request.url)
        message = request.method.upper().encode() + uri.encode() + request.body + timestamp.encode()
        expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    elif (signature := headers.get("X-HubSpot-Signature")) is not None:
        version = headers.get("X-HubSpot-Signature-Version", "v1").lower()
        if version not in ("v1", "v2"):
            raise WebhookRejected(f"hubspot: unknown signature version {version!r}", connector="hubspot")
        signed = b"" if version == "v1" else request.method.upper().encode() + request.url.encode()
        expected = hashlib.sha256(secret.encode() + signed + request.body).hexdigest().encode()
        signature = signature.lower()
    else:
        raise WebhookRejected("hubspot: the webhook carries no X-HubSpot-Signature(-v3)", connector="hubspot")
    if not signatures_match(expected, signature):
        raise WebhookRejected("hubspot: the webhook signature does not match", connector="hubspot")


def _check_fresh(signed_at: float, now: float) -> None:
    if now - signed_at > _MAX_SKEW_SECONDS:
        raise WebhookRejected("hubspot: the webhook is more than five minutes old", connector="hubspot")
    if signed_at - now > _MAX_SKEW_SECONDS:
        raise WebhookRejected(
            "hubspot: the webhook is signed more than five minutes in the future", connector="hubspot"
        )


def webhook_account(request: WebhookRequest) -> str | None:
    """The HubSpot account (`portalId`) a delivery is about; YAML cannot read a JSON array's first item."""
    try:
        events = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None
    first = events[0] if isinstance(events, list) and events and isinstance(events[0], dict) else {}
    portal = first.get("portalId")
    return str(portal) if isinstance(portal, int | str) and not isinstance(portal, bool) else None


def parse_webhook(request: WebhookRequest) -> list[WebhookEvent]:
    """The body is a JSON array of events with numeric ids that may repeat (dedupe on eventId) and arrive
    out of order (sorted by occurredAt here); a merge keeps one contact and removes the others."""
    try:
        events = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise WebhookRejected("hubspot: the webhook body is not JSON", connector="hubspot") from None
    if not isinstance(events, list):
        raise WebhookRejected("hubspot: the webhook body is not a JSON array of events", connector="hubspot")
    unique = {e.get("eventId", id(e)): e for e in reversed(events) if isinstance(e, dict)}  # first copy wins
    ordered = sorted(unique.values(), key=lambda e: e.get("occurredAt") or 0)
    return [change for event in ordered for change in _changes(event)]


def _changes(event: dict[str, Any]) -> list[WebhookEvent]:
    """The record changes of one event; other object types and subscription types give none."""
    kind = str(event.get("subscriptionType", ""))
    action = kind.removeprefix("contact.") if kind.startswith("contact.") else ""
    when, event_id = to_iso(event.get("occurredAt")), _event_id(event)
    by = str(event["sourceId"]) if event.get("sourceId") not in (None, "") else None  # an app id, or userId:7788
    if action in _UPSERTS and "objectId" in event:
        return [WebhookEvent("upsert", str(event["objectId"]), when, event_id, by)]
    if action in _DELETIONS and "objectId" in event:
        return [WebhookEvent("deleted", str(event["objectId"]), when, event_id, by)]
    survivor = event.get("newObjectId") or event.get("primaryObjectId")
    if action != "merge" or not survivor:
        return []
    kept = str(survivor)
    merged = {str(i) for i in [event.get("primaryObjectId"), *event.get("mergedObjectIds", [])] if i} - {kept}
    return [WebhookEvent("upsert", kept, when, event_id and f"{event_id}:{kept}")] + [
        WebhookEvent("deleted", gone, when, event_id and f"{event_id}:{gone}") for gone in sorted(merged)
    ]


def _event_id(event: dict[str, Any]) -> str | None:
    """HubSpot's eventId, the replay identity of the event; None when absent (the body's hash stands in)."""
    value = event.get("eventId")
    return str(value) if isinstance(value, int | str) and not isinstance(value, bool) and value != "" else None
