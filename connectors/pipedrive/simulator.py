"""An in-memory Pipedrive persons API (v1 and v2) on `SimulatorBase`, for tests, demos and benchmarks.

It answers the URLs `api-specs/pipedrive.md` describes, in Pipedrive's `success`/`data`/`additional_data`
envelope:

    GET /api/v2/persons           cursor + limit (<= 500, more is a 400); `next_cursor: null` ends the list;
                                  `updated_since` (>=) / `updated_until` (<), `sort_by`, `sort_direction`, `ids`
    GET /api/v2/persons/{id}      404 envelope for unknown and soft-deleted persons
    GET /api/v1/persons           start + limit (capped at 500), `more_items_in_collection` / `next_start`,
                                  `"data": null` when empty, v1 shapes and `YYYY-MM-DD HH:MM:SS` times
    GET /api/v1/persons/{id}      soft-deleted persons too (`active_flag: false`), until they are purged
    GET /api/v1/recents           person changes, deletions included, since `since_timestamp` (>=)

Also under `/v1/...`. Auth: the `x-api-token` header, the older `api_token` query parameter, or an OAuth
`Bearer` token. Limits: a rolling 2-second burst window and a daily token budget answer 429 with
`x-ratelimit-*` and Retry-After; a client that keeps ignoring 429s gets Cloudflare's 403 HTML page.
Soft-deleted persons are purged 30 days after deletion. `expire_tokens` makes 31 days pass: the `Date`
header jumps, earlier deletions are purged, and times written afterwards are 31 days later too.

    python -m connectors.pipedrive.simulator --port 8420 --records 1000
"""

from __future__ import annotations

import base64
import bisect
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any, Literal

import httpx
import orjson
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from connectors.simulation import (
    Limit,
    OAuthQuirks,
    Person,
    Refusal,
    SimulatorBase,
    decode_token,
    encode_token,
    serve,
    with_knobs,
)
from connectors.webhooks import WebhookRequest

__all__ = ["DEFAULT_TOKEN", "MAX_LIMIT", "PipedriveSimulator", "main", "make_simulator"]

DEFAULT_TOKEN = "4f1c9a7e2b8d3c6f0a5e9b1d7c2f8a4e6b0d3c9f"  # API tokens are 40 hex characters
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
BURST_SECONDS = 2.0
DAY_MS = 86_400_000
RETENTION_MS = 30 * DAY_MS  # soft-deleted persons are purged 30 days later
EXPIRY_JUMP_MS = 31 * DAY_MS  # how far the clock jumps under `expire_tokens`
COMPANY_ID = 123456
OWNER = {"id": 18, "name": "Owner Name", "email": "owner@example.com"}
CUSTOM_FIELD = "d4de1c1518b4531717c676029a45911c340390a6"  # custom fields are keyed by 40-hex hashes
COSTS = {"v2_list": 10, "v2_get": 1, "v1_list": 20, "v1_get": 2, "recents": 20}  # tokens; v2 costs less
_ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
_SOURCES = ("web", "referral", "event")
_CLOUDFLARE = (
    b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head><body>"
    b"<h1>Sorry, you have been blocked</h1><p>You are unable to access pipedrive.com</p></body></html>"
)

Key = tuple[int, int]  # (sort value in epoch seconds, or 0 for `id`; person id)


def _invalid(message: str) -> Refusal:
    """A request Pipedrive answers with 400 and the `success: false` envelope."""
    return Refusal(400, "invalid", message)


class PipedriveSimulator(SimulatorBase):
    """Seeded persons with ids 1, 2, 3, ... (`Person.seq + 1`) behind Pipedrive's v1 and v2 URLs."""

    connector = "pipedrive"
    oauth_quirks = OAuthQuirks(
        authorize_path="/oauth/authorize",
        token_path="/oauth/token",
        revoke_path="/oauth/revoke",
        base_url_field="api_domain",
    )

    counters = tuple(COSTS)
    fault_limit = "injected"
    server_error = (500, "internal", "Internal server error")
    malformed_body = b'{"success":true,"data":[{"id":'

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        burst_limit: int = 20,
        daily_tokens: int = 300_000,
        abuse_after: int = 10,
        account_open: bool = True,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        super().__init__(records, seed, token=token)
        self.burst_limit, self.daily_tokens, self.abuse_after = burst_limit, daily_tokens, abuse_after
        self.account_open = account_open  # False: every request is answered 402 (trial expired, not paid)
        self.burst = self.rolling_window("burst", BURST_SECONDS, burst_limit)
        self.budget = self.daily_budget("daily", daily_tokens)
        self._ignored_429s = 0
        self._jumped = False  # whether `expire_tokens` moved the clock

    # -- SimulatorBase --------------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return str(person.seq + 1)

    def api_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            self.route("/api/v2/persons", self._v2_list, "v2_list"),
            self.route("/api/v2/persons/{id}", self._v2_get, "v2_get"),
        ]
        for prefix in ("/api/v1", "/v1"):
            routes += [
                self.route(f"{prefix}/persons", self._v1_list, "v1_list"),
                self.route(f"{prefix}/persons/{{id}}", self._v1_get, "v1_get"),
                self.route(f"{prefix}/recents", self._recents, "recents"),
            ]
        return routes

    def presented_token(self, request: Request) -> str | None:
        """The `x-api-token` header, the older `api_token` query parameter, or an OAuth bearer token."""
        given = request.headers.get("x-api-token") or request.query_params.get("api_token")
        return given or super().presented_token(request)

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "unauthorized", "unauthorized access")

    def authorize(self, request: Request, kind: str) -> Refusal | None:
        if not self.account_open:
            message = "Company account is not open. Possible reason: trial expired or no valid subscription"
            return Refusal(402, "account_closed", message)
        return None

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        return self._error(refused.status, refused.message, refused.headers)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """429 with Retry-After; a client that keeps ignoring 429s gets Cloudflare's 403 HTML page."""
        if limit == "injected":
            return self._error(429, "Request over limit", {"Retry-After": f"{wait:g}"})
        self._ignored_429s += 1
        if self._ignored_429s > self.abuse_after:
            return Response(_CLOUDFLARE, 403, media_type="text/html", headers={"Date": self.headers(request)["Date"]})
        message = "Request over limit" if limit == "burst" else "Daily API token budget exceeded"
        return self._error(429, message, {"Retry-After": f"{wait:g}"})

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        """One request of the 2-second burst window and the endpoint's cost in tokens of today's budget."""
        return [(self.burst, 1), (self.budget, COSTS[kind])]

    async def admit(self, request: Request, kind: str = "api") -> Response | None:
        """The base's admission; an admitted request forgives the 429s ignored before it."""
        early = await super().admit(request, kind)
        if early is None:
            with self.lock:
                self._ignored_429s = 0
        return early

    def headers(self, request: Request | None) -> dict[str, str]:
        return {
            "Date": formatdate(self.clock.time(), usegmt=True),
            "x-ratelimit-limit": str(self.burst_limit),
            "x-ratelimit-remaining": str(self.burst.remaining()),
            "x-ratelimit-reset": str(max(1, round(self.burst.resets_in()))),
            "x-daily-requests-left": "10000",  # the POST/PUT fair-usage counter; GETs do not spend it
        }

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, SecretStr]]:
        return {"base_url": base_url}, {"api_token": SecretStr(self.token)}

    def inject(self, **faults: Any) -> None:
        """As SimulatorBase; `expire_tokens` makes 31 days pass (until `reset`), so earlier deletions are purged."""
        with self.lock:
            super().inject(**faults)
            if self.faults.expire_tokens and not self._jumped:
                self.clock.advance(EXPIRY_JUMP_MS / 1000)
                self._jumped = True

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.burst.clear()
            self.budget.clear()
            self._ignored_429s = 0
            if self._jumped:
                self.clock.advance(-EXPIRY_JUMP_MS / 1000)
                self._jumped = False

    # -- endpoints ------------------------------------------------------------------------------------

    async def _v2_list(self, request: Request) -> Response:
        query = request.query_params
        limit = _limit(query.get("limit"), over="reject")
        field, descending = _sort(query.get("sort_by", "id"), query.get("sort_direction", "asc"))
        since, until = (
            _rfc3339_seconds(query.get("updated_since"), up=True),
            _rfc3339_seconds(query.get("updated_until")),
        )
        ids = _ids(query.get("ids"))
        start = _decode_cursor(query.get("cursor"), field)
        with self.lock:
            if field == "update_time" and since is not None and not descending:
                start = max(start or (since, 0), (since, 0))
            keys, people = self._index(field, deleted=False)

            def wanted(person: Person) -> bool:
                updated = person.modified_ms // 1000
                in_range = (since is None or updated >= since) and (until is None or updated < until)
                return in_range and (ids is None or person.seq + 1 in ids)

            page, following = _scan(keys, people, start, descending, limit, wanted)
            cursor = _encode_cursor(field, following) if following else None
            if query.get("cursor") and self.take_repeat():
                cursor = query["cursor"]
            data = [self._v2(p) for p in page]
            return self._reply({"success": True, "data": data, "additional_data": {"next_cursor": cursor}})

    async def _v2_get(self, request: Request) -> Response:
        raw: str = request.path_params["id"]
        if not raw.isascii() or not raw.isdigit():
            raise _invalid("Validation failed: id: Parameter 'id' must be an integer")
        with self.lock:
            person = self.find(raw)
            if person is None or person.deleted:
                raise Refusal(404, "not_found", "Person not found")
            return self._reply({"success": True, "data": self._v2(person)})

    async def _v1_list(self, request: Request) -> Response:
        query = request.query_params
        start, limit = _offset(query.get("start")), _limit(query.get("limit"), over="cap")
        with self.lock:
            _, people = self._index("id", deleted=False)
            page = people[start : start + limit]
            following = start if "start" in query and self.take_repeat() else start + len(page)
            pagination = _pagination(start, limit, start + limit < len(people), following)
            body = {
                "success": True,
                "data": [self._v1(p) for p in page] or None,  # an empty collection is `"data": null`
                "additional_data": {"pagination": pagination},
                "related_objects": {"user": {str(OWNER["id"]): {"id": OWNER["id"], "name": OWNER["name"]}}},
            }
            return self._reply(body)

    async def _v1_get(self, request: Request) -> Response:
        with self.lock:
            person = self.find(request.path_params["id"])
            if person is None or self._purged(person):
                raise Refusal(404, "not_found", "Person not found")
            related = {"user": {str(OWNER["id"]): {"id": OWNER["id"], "name": OWNER["name"]}}}
            return self._reply({"success": True, "data": self._v1(person), "related_objects": related})

    async def _recents(self, request: Request) -> Response:
        query = request.query_params
        since = _v1_seconds(query.get("since_timestamp"))
        start, limit = _offset(query.get("start")), _limit(query.get("limit"), over="cap")
        with self.lock:
            keys, people = self._index("update_time", deleted=True)
            first = (
                bisect.bisect_left(keys, (since, 0))
                if "person" in query.get("items", "person").split(",")
                else len(keys)
            )
            page = people[first + start : first + start + limit]
            following = start if "start" in query and self.take_repeat() else start + len(page)
            items = [{"item": "person", "id": p.seq + 1, "data": self._v1(p)} for p in page]
            last = _v1_time(page[-1].modified_ms) if page else query["since_timestamp"]
            additional = {
                "since_timestamp": query["since_timestamp"],
                "last_timestamp_on_page": last,
                "pagination": _pagination(start, limit, first + start + limit < len(keys), following),
            }
            return self._reply({"success": True, "data": items or None, "additional_data": additional})

    # -- webhooks -------------------------------------------------------------------------------------

    def webhook(
        self,
        external_id: str,
        action: Literal["create", "change", "delete"],
        *,
        version: Literal["1.0", "2.0"] = "2.0",
        auth: tuple[str, str] | None = None,
    ) -> WebhookRequest:
        """The delivery Pipedrive would POST for a person event: v2 (`meta.action`) or v1 (`event`) payload,
        with the webhook's HTTP Basic credentials when it has them (there is no signature)."""
        with self.lock:
            person = self.find(external_id)
            if person is None:
                raise KeyError(external_id)
            now_ms = self.clock.now_ms()
            body = (
                self._v2_event(person, action, now_ms) if version == "2.0" else self._v1_event(person, action, now_ms)
            )
        headers = httpx.Headers({"content-type": "application/json", "user-agent": "Pipedrive Webhooks"})
        if auth is not None:
            headers["authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        return WebhookRequest("POST", "https://inlet.example/webhooks/pipedrive", headers, orjson.dumps(body))

    def _v2_event(self, person: Person, action: str, now_ms: int) -> dict[str, Any]:
        record = self._v2(person)
        meta = {
            "action": action,
            "entity": "person",
            "entity_id": str(person.seq + 1),
            "company_id": str(COMPANY_ID),
            "correlation_id": str(uuid.uuid4()),
            "id": str(uuid.uuid4()),
            "is_bulk_edit": False,
            "timestamp": _iso_ms(now_ms),
            "type": "general",
            "user_id": str(OWNER["id"]),
            "version": "2.0",
            "webhook_id": "4321",
            "webhook_owner_id": str(OWNER["id"]),
            "change_source": "api",
            "attempt": 1,
            "host": "acme.pipedrive.com",
            "permitted_user_ids": [str(OWNER["id"])],
        }
        data = None if action == "delete" else record
        previous = {"create": None, "change": {"job_title": None}, "delete": record}[action]
        return {"meta": meta, "data": data, "previous": previous}

    def _v1_event(self, person: Person, action: str, now_ms: int) -> dict[str, Any]:
        verb = {"create": "added", "change": "updated", "delete": "deleted"}[action]
        record = self._v1(person)
        meta = {
            "v": 1,
            "action": verb,
            "object": "person",
            "id": person.seq + 1,
            "company_id": COMPANY_ID,
            "user_id": OWNER["id"],
            "host": "acme.pipedrive.com",
            "timestamp": now_ms // 1000,
            "timestamp_micro": now_ms * 1000,
            "permitted_user_ids": [OWNER["id"]],
            "trans_pending": False,
            "is_bulk_update": False,
            "pipedrive_service_name": False,
            "change_source": "app",
            "webhook_id": 4321,
        }
        return {
            "v": 1,
            "matches_filters": {"current": [], "previous": []},
            "meta": meta,
            "retry": 0,
            "current": None if verb == "deleted" else record,
            "previous": None if verb == "added" else record,
            "event": f"{verb}.person",
        }

    # -- rendering ------------------------------------------------------------------------------------

    def _v2(self, person: Person) -> dict[str, Any]:
        return {
            "id": person.seq + 1,
            "name": person.full_name,
            "first_name": person.first,
            "last_name": person.last,
            "owner_id": OWNER["id"],
            "org_id": _org_id(person.company),
            "picture_id": None,
            "add_time": _rfc3339(person.created_ms),
            "update_time": _rfc3339(person.modified_ms),
            "visible_to": 3,
            "label_ids": [],
            "is_deleted": person.deleted,
            "emails": [{"label": "work", "value": person.email, "primary": True}],
            "phones": [{"label": "work", "value": person.phone, "primary": True}] if person.phone else [],
            "job_title": person.title,
            "custom_fields": {CUSTOM_FIELD: _SOURCES[person.seq % len(_SOURCES)]},
        }

    def _v1(self, person: Person) -> dict[str, Any]:
        owner = {**OWNER, "has_pic": 0, "pic_hash": None, "active_flag": True, "value": OWNER["id"]}
        org = {"name": person.company, "owner_id": OWNER["id"], "active_flag": True, "value": _org_id(person.company)}
        phone = (
            {"label": "work", "value": person.phone, "primary": True}
            if person.phone
            else {"value": "", "primary": True}
        )
        return {
            "id": person.seq + 1,
            "company_id": COMPANY_ID,
            "owner_id": owner,
            "org_id": org,
            "name": person.full_name,
            "first_name": person.first,
            "last_name": person.last,
            "first_char": person.first[0].lower(),
            "email": [{"label": "work", "value": person.email, "primary": True}],
            "phone": [phone],  # a person without a phone still has one empty primary entry
            "add_time": _v1_time(person.created_ms),
            "update_time": _v1_time(person.modified_ms),
            "active_flag": not person.deleted,
            "visible_to": "3",
            "label_ids": [],
            "job_title": person.title,
            "org_name": person.company,
            "owner_name": OWNER["name"],
            CUSTOM_FIELD: _SOURCES[person.seq % len(_SOURCES)],
        }

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        body = {"success": False, "error": message, "errorCode": status, "error_info": _ERROR_INFO}
        return self._reply({**body, "data": None, "additional_data": None}, status, headers)

    def _reply(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return self.answer(body, status, None, headers)

    # -- time and ordering ----------------------------------------------------------------------------

    def _purged(self, person: Person) -> bool:
        """Soft-deleted persons are purged 30 days after deletion."""
        deleted = person.deleted_ms
        return deleted is not None and deleted < self.clock.now_ms() - RETENTION_MS

    def _index(self, field: str, *, deleted: bool) -> tuple[list[Key], list[Person]]:
        """Persons sorted by (`field` in seconds, id): live ones, or with `deleted` every unpurged one.

        Rebuilt only after a mutation or (for purges) each simulated hour, so a page is a bisect and a slice.
        """
        value: Callable[[Person], int] = {
            "id": lambda p: 0,
            "update_time": lambda p: p.modified_ms // 1000,
            "add_time": lambda p: p.created_ms // 1000,
        }[field]

        def build() -> tuple[list[Key], list[Person]]:
            chosen = [p for p in self.people.all if (deleted and not self._purged(p)) or not p.deleted]
            chosen.sort(key=lambda p: (value(p), p.seq))
            return [(value(p), p.seq + 1) for p in chosen], chosen

        return self.people.view(("persons", field, deleted, self.clock.now_ms() // 3_600_000), build)


def _scan(
    keys: list[Key],
    people: list[Person],
    start: Key | None,
    descending: bool,
    limit: int,
    wanted: Callable[[Person], bool],
) -> tuple[list[Person], Key | None]:
    """Up to `limit` wanted persons from `start` on, and the key of the next one (the next cursor)."""
    if descending:
        position, step = (bisect.bisect_right(keys, start) - 1 if start else len(keys) - 1), -1
    else:
        position, step = (bisect.bisect_left(keys, start) if start else 0), 1
    page: list[Person] = []
    while 0 <= position < len(keys):
        if wanted(people[position]):
            if len(page) == limit:
                return page, keys[position]
            page.append(people[position])
        position += step
    return page, None


def _encode_cursor(field: str, key: Key) -> str:
    """An opaque marker of the next page's first item: base64url JSON, like `eyJmaWVsZCI6ImlkIiwiaWQiOjEwMH0`."""
    marker: dict[str, Any] = {"field": field, "id": key[1]}
    if field != "id":
        marker["value"] = _rfc3339(key[0] * 1000)
    return encode_token(marker)


def _decode_cursor(cursor: str | None, field: str) -> Key | None:
    if cursor is None:
        return None
    try:
        marker = decode_token(cursor)
        issued_for = marker["field"]
        if issued_for != field:
            raise _invalid("The cursor was issued for another sort_by; keep the other parameters while paging")
        value = 0 if field == "id" else _rfc3339_seconds(marker["value"])
        return (value or 0, int(marker["id"]))
    except (KeyError, TypeError, ValueError):
        raise _invalid("Invalid cursor") from None


def _limit(raw: str | None, *, over: Literal["reject", "cap"]) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise _invalid("Validation failed: limit: Parameter 'limit' must be a positive integer")
    if int(raw) > MAX_LIMIT and over == "reject":
        raise _invalid(f"Validation failed: limit: Parameter 'limit' must be less than or equal to {MAX_LIMIT}")
    return min(int(raw), MAX_LIMIT)


def _offset(raw: str | None) -> int:
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit():
        raise _invalid("Validation failed: start: Parameter 'start' must be a non-negative integer")
    return int(raw)


def _sort(field: str, direction: str) -> tuple[str, bool]:
    if field not in ("id", "update_time", "add_time"):
        raise _invalid("Validation failed: sort_by: must be one of id, update_time, add_time")
    if direction not in ("asc", "desc"):
        raise _invalid("Validation failed: sort_direction: must be one of asc, desc")
    return field, direction == "desc"


def _ids(raw: str | None) -> set[int] | None:
    if raw is None:
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if len(parts) > 100 or not all(part.isascii() and part.isdigit() for part in parts):
        raise _invalid("Validation failed: ids: at most 100 comma-separated integers")
    return {int(part) for part in parts}


def _rfc3339_seconds(raw: str | None, *, up: bool = False) -> int | None:
    """Epoch seconds of an RFC 3339 time; `up` rounds a fraction up (update times have whole seconds)."""
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(f"Validation failed: {raw!r} is not an RFC 3339 date-time") from None
    if when.tzinfo is None:
        raise _invalid(f"Validation failed: {raw!r} has no time zone (RFC 3339 needs Z or an offset)")
    seconds = when.timestamp()
    return int(seconds) + (1 if up and seconds != int(seconds) else 0)


def _v1_seconds(raw: str | None) -> int:
    if raw is None:
        raise _invalid("since_timestamp is required (YYYY-MM-DD HH:MM:SS, UTC)")
    try:
        return int(datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise _invalid(f"since_timestamp {raw!r} is not YYYY-MM-DD HH:MM:SS") from None


def _pagination(start: int, limit: int, more: bool, following: int) -> dict[str, Any]:
    pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = following
    return pagination


def _org_id(company: str) -> int:
    return zlib.crc32(company.encode()) % 1000 + 1


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1_time(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


make_simulator = PipedriveSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(PipedriveSimulator, argv, "Serve a simulated Pipedrive persons API (v1 and v2)."))


if __name__ == "__main__":
    main()
