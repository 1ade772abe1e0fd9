"""Pipedrive where YAML stops: 429 waits without Retry-After, Cloudflare's HTML 403, the incremental pull
(v2 `updated_since` plus `/api/v1/recents` for deletions, over a 30-day deletion retention) and webhooks
(v1 and v2 payloads, authenticated by HTTP Basic only)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

import httpx
import orjson

from connectors.base import Connector, PageGuard
from connectors.base_types import PageRequest
from connectors.changes import Change, ChangePage
from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    MalformedPage,
    RetryableError,
    SinceExpired,
    WebhookRejected,
    parse_retry_after,
)
from connectors.pagination import Cursor, PageView, Paginator, StopRules
from connectors.paths import lookup
from connectors.webhooks import WebhookEvent, WebhookRequest, signatures_match

__all__ = ["RETENTION", "SinceToken", "changes", "classify_error", "parse_webhook", "retry_after", "verify_webhook"]

logger = logging.getLogger(__name__)

RETENTION = timedelta(days=30)  # soft-deleted persons are purged after this; /v1/recents forgets them
BURST_SECONDS = 2.0
BLOCKED_SECONDS = 60.0  # Cloudflare's block for ignoring 429s; its length is not documented
_DELETE_MARGIN = timedelta(minutes=1)  # clock skew between the Date header and update times
_MAX_SEEN = 500
_RECENTS_PATH = "/api/v1/recents"
_RECENTS = Cursor(
    cursor_path="additional_data.pagination.next_start",
    param="start",
    limit_param="limit",
    page_size=500,
    stop=StopRules(has_more_path="additional_data.pagination.more_items_in_collection"),
)

# -- rate limits and odd statuses -------------------------------------------------------------------


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After when a 429 has it (older docs), else `x-ratelimit-reset` (seconds until the burst window
    resets), else one 2-second window as the docs advise; the framework reads only Retry-After."""
    for header in ("Retry-After", "x-ratelimit-reset"):
        wait = parse_retry_after(response.headers.get(header))
        if wait is not None:
            return wait
    return BURST_SECONDS


def classify_error(response: httpx.Response) -> ConnectorError | None:
    """A 403 HTML page is Cloudflare blocking a token that ignored 429s (back off, the credentials are fine);
    402 is an unpaid account or an expired trial, not a bad request. YAML maps statuses only one way."""
    if response.status_code == 403 and "json" not in response.headers.get("content-type", ""):
        return RetryableError(
            f"pipedrive: Cloudflare blocked this token for ignoring 429s; waiting {BLOCKED_SECONDS:g}s",
            connector="pipedrive",
            retry_after=BLOCKED_SECONDS,
            status=429,  # a refusal before any work, like a 429
        )
    if response.status_code == 402:
        return AuthError(
            "pipedrive: the company account is not open (402: trial expired or no paid subscription); "
            "the account owner must renew it in Pipedrive",
            connector="pipedrive",
        )
    return None


# -- the incremental pull ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SinceToken:
    """What one pull hands the next, as a query string::

        updated_since=2024-05-01T12:00:03Z&deleted_since=2024-05-01T11:59:00Z&checked_at=2024-05-01T12:00:00Z&seen=..

    `updated_since` / `deleted_since` are the highest update times seen on the v2 feed and on /v1/recents
    (both re-read inclusively next time); `checked_at` is the server's time when the pull started; `seen`
    holds fingerprints of the records at the two watermarks, which the inclusive re-read returns again.
    """

    updated_since: datetime | None
    deleted_since: datetime
    checked_at: datetime
    seen: frozenset[str] = frozenset()

    def dump(self) -> str:
        fields = {
            "updated_since": _rfc3339(self.updated_since) if self.updated_since else "",
            "deleted_since": _rfc3339(self.deleted_since),
            "checked_at": _rfc3339(self.checked_at),
            "seen": ".".join(sorted(self.seen)),
        }
        return urlencode({name: value for name, value in fields.items() if value}, safe=":")

    @classmethod
    def parse(cls, text: str) -> SinceToken:
        """A dumped token, or a bare RFC 3339 time (then every watermark and the check are that time)."""
        if "=" not in text and (when := _instant(text)) is not None:
            return cls(when, when, when)
        fields = {name: values[0] for name, values in parse_qs(text).items()}
        updated, deleted = _instant(fields.get("updated_since")), _instant(fields.get("deleted_since"))
        checked = _instant(fields.get("checked_at"))
        if deleted is None or checked is None:
            raise SinceExpired(f"pipedrive: the stored token {text[:60]!r} is not one this connector wrote")
        return cls(updated, deleted, checked, frozenset(filter(None, fields.get("seen", "").split("."))))


class _Watermark:
    """One feed's highest update time and the fingerprints of its records at that time."""

    def __init__(self, since: datetime | None, seen: frozenset[str]) -> None:
        self._since, self._seen = since, seen
        self.high, self.at_high = since, set[str]()

    def fresh(self, when: datetime | None, fingerprint: str) -> bool:
        """Note a record; False when the previous pull already reported it unchanged at its watermark."""
        if when is None:
            return True
        if self.high is None or when > self.high:
            self.high, self.at_high = when, set()
        if when == self.high and len(self.at_high) < _MAX_SEEN:  # beyond: re-reported, harmlessly
            self.at_high.add(fingerprint)
        return not (when == self._since and fingerprint in self._seen)


async def changes(connector: Connector, collection: str, since: str | None) -> AsyncIterator[ChangePage]:
    """Upserts from the YAML `changes:` feed (v2, `updated_since`, oldest first), then deletions from
    `/api/v1/recents` (items whose `active_flag` is false), since v2 does not document listing soft-deleted
    persons. A token whose last pull is more than RETENTION old (server time) raises SinceExpired: deletions
    since then may have been purged, so `pull_all` resyncs. YAML has one endpoint per feed and no dedupe."""
    pull = _Pull(SinceToken.parse(since) if since else None)
    async for page in _upserts(connector, collection, pull):
        yield page
    if pull.token is not None:
        async for page in _deletions(connector, pull.token.deleted_since, pull):
            yield page
    yield ChangePage(changes=[], next=None, since=pull.next_token().dump())


class _Pull:
    """One pull's state: the token it started from, the two feeds' watermarks and the server's time."""

    def __init__(self, token: SinceToken | None) -> None:
        seen = token.seen if token else frozenset()
        self.token: SinceToken | None = token
        self.checked_at: datetime | None = None  # the server's time at the first response
        self.upserts = _Watermark(token.updated_since if token else None, seen)
        self.deletions = _Watermark(token.deleted_since if token else None, seen)

    def started(self, response: httpx.Response) -> None:
        """Read the server's time off the first response and refuse a token past the deletion retention."""
        if self.checked_at is not None:
            return
        self.checked_at = _server_time(response)
        if self.token is not None and self.checked_at - self.token.checked_at > RETENTION:
            raise SinceExpired(
                f"pipedrive: the last pull was at {_rfc3339(self.token.checked_at)}, more than {RETENTION.days} "
                "days ago; Pipedrive purges deleted persons after that, so a full resync follows",
                connector="pipedrive",
            )

    def next_token(self) -> SinceToken:
        checked_at = self.checked_at or datetime.now(UTC)
        deleted_since = self.deletions.high or checked_at - _DELETE_MARGIN  # after a first pull: from now on
        seen = frozenset(self.upserts.at_high | self.deletions.at_high)
        return SinceToken(self.upserts.high, deleted_since, checked_at, seen)


async def _upserts(connector: Connector, collection: str, pull: _Pull) -> AsyncIterator[ChangePage]:
    """The v2 feed, oldest update first; a record with `is_deleted: true` (if v2 lists one) is a deletion."""
    spec = connector.collection(collection).changes
    if spec is None or spec.since_param is None or spec.since_from_records is None:
        raise FatalError(f"pipedrive.{collection}: the hook needs `changes:` with since_param", connector="pipedrive")
    params = dict(spec.params)
    if pull.token is not None and pull.token.updated_since is not None:
        params[spec.since_param] = _rfc3339(pull.token.updated_since)
    request = connector.request(spec.method, spec.path, params)
    async for response, records in _pages(connector, request, spec.records_path, spec.paginator):
        pull.started(response)
        page = []
        for record in records:
            if not pull.upserts.fresh(_instant(lookup(record, spec.since_from_records, None)), _fingerprint(record)):
                continue
            external_id, updated_at = connector.record_id(collection, record), connector.updated_at(collection, record)
            rule = spec.deleted
            if rule is not None and lookup(record, rule.path, None) == rule.equals:
                page.append(Change("deleted", external_id, None, updated_at))
            else:
                page.append(Change("upsert", external_id, record, updated_at))
        yield ChangePage(changes=page, next=None)


async def _deletions(connector: Connector, since: datetime, pull: _Pull) -> AsyncIterator[ChangePage]:
    """Deleted persons among the recent changes; live ones come from the v2 feed."""
    params = {"since_timestamp": since.strftime("%Y-%m-%d %H:%M:%S"), "items": "person"}
    async for _, items in _pages(connector, connector.request("GET", _RECENTS_PATH, params), "data", _RECENTS):
        page = []
        for item in items:
            data: dict[str, Any] = item["data"] if isinstance(item.get("data"), dict) else {}
            when = _instant(data.get("update_time"))
            fresh = pull.deletions.fresh(when, _fingerprint(item))
            if fresh and item.get("item") == "person" and data.get("active_flag") is False:
                page.append(Change("deleted", str(item["id"]), None, _rfc3339(when) if when else None))
        yield ChangePage(changes=page, next=None)


async def _pages(
    connector: Connector, request: httpx.Request, records_path: str, paginator: Paginator
) -> AsyncIterator[tuple[httpx.Response, list[dict[str, Any]]]]:
    """Each page's response and records; Pipedrive's `"data": null` is an empty page, `success: false` an error."""
    guard, seen = PageGuard(connector.name, connector.spec.max_pages), 0
    current: PageRequest | None = PageRequest.from_httpx(paginator.first_request(request))
    while current is not None:
        guard.check(current)
        outgoing = connector.build(current)
        response = await connector.send(connector.build(current))
        url = connector.redact(current.url)
        body = connector.read_json(response, url)
        if isinstance(body, dict) and body.get("success") is False:
            raise MalformedPage(
                f"pipedrive: {url} answered success: false ({body.get('error')})", connector="pipedrive"
            )
        records = (
            [] if lookup(body, records_path, None) is None else connector.parse_page(response, records_path, url)[1]
        )
        seen += len(records)
        view = PageView(body=body, records=records, seen=seen)
        following = None if paginator.is_last(view) else paginator.next_request(outgoing, response, view)
        yield response, records
        current = PageRequest.from_httpx(following) if following is not None else None


def _server_time(response: httpx.Response) -> datetime:
    """The server's clock from the Date header (the latest, should a proxy add one); else the local clock."""
    dates = []
    for value in response.headers.get_list("date"):
        try:
            dates.append(parsedate_to_datetime(value).astimezone(UTC))
        except (TypeError, ValueError):
            continue
    return max(dates, default=datetime.now(UTC).replace(microsecond=0))


def _instant(value: Any) -> datetime | None:
    """A v2 (`2024-05-01T12:00:03Z`) or v1 (`2024-05-01 12:00:03`, UTC) time, aware; None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fingerprint(record: dict[str, Any]) -> str:
    return hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=5).hexdigest()


# -- webhooks ---------------------------------------------------------------------------------------


def verify_webhook(request: WebhookRequest, secret: str, now: float) -> None:
    """Pipedrive signs nothing: a webhook may carry HTTP Basic credentials (`http_auth_user` /
    `http_auth_password`), here `secret` = "user:password", compared in constant time. No signed timestamp
    exists, so `now` cannot reject replays."""
    scheme, _, encoded = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise WebhookRejected("pipedrive: the webhook has no HTTP Basic credentials", connector="pipedrive")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected(
            "pipedrive: the webhook's Basic credentials are not base64", connector="pipedrive"
        ) from None
    if not signatures_match(secret.encode(), given):
        raise WebhookRejected("pipedrive: the webhook's Basic credentials are wrong", connector="pipedrive")


def parse_webhook(request: WebhookRequest) -> list[WebhookEvent]:
    """A v2 payload (`meta.action` create/change/delete, string ids) or a v1 one (`event` such as
    `deleted.person`, `retry` from 0); events of other objects announce no person change."""
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        logger.warning("pipedrive: a verified webhook whose body is not JSON; ignored")
        return []
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(meta, dict):
        return []
    event = _v1_event(meta) if body.get("v") == 1 or meta.get("v") == 1 else _v2_event(meta)
    return [] if event is None else [event]


def _v2_event(meta: dict[str, Any]) -> WebhookEvent | None:
    """A merge arrives as a `delete` (meta.merged_to_id) of the merged person and a `change` of the kept one."""
    if meta.get("entity") != "person" or meta.get("entity_id") in (None, ""):
        return None
    kind: Literal["upsert", "deleted"] = "deleted" if meta.get("action") in ("delete", "deleted") else "upsert"
    event_id = str(meta["id"]) if meta.get("id") else None
    return WebhookEvent(kind, str(meta["entity_id"]), _iso(meta.get("timestamp")), event_id, _user(meta))


def _v1_event(meta: dict[str, Any]) -> WebhookEvent | None:
    """v1 has no event id and retries resend the same meta; the id below is stable across retries."""
    if meta.get("object") != "person" or meta.get("id") in (None, ""):
        return None
    action, micro = str(meta.get("action", "")), meta.get("timestamp_micro")
    when = _iso(micro / 1_000_000 if isinstance(micro, int | float) else meta.get("timestamp"))
    event_id = f"v1:{meta.get('webhook_id')}:{action}:{meta['id']}:{micro or meta.get('timestamp')}"
    return WebhookEvent("deleted" if action == "deleted" else "upsert", str(meta["id"]), when, event_id, _user(meta))


def _user(meta: dict[str, Any]) -> str | None:
    """The user whose change this is (an integration's token user for its own writes)."""
    user = meta.get("user_id")
    return None if user in (None, "") or isinstance(user, bool) else str(user)


def _iso(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value) if value else None
