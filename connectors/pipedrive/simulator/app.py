"""`PipedriveSimulator`: persons on v1 and v2, recents, changelogs, the collection, webhooks and limits."""

from __future__ import annotations

import base64
import bisect
import re
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx
import orjson
from pydantic import SecretStr
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from connectors.pipedrive.simulator.webhooks import POLICY, Webhooks, v1_event, v2_event
from connectors.pipedrive.simulator.wire import (
    FIELD_KEYS,
    FILTERS,
    INCLUDE_FIELDS,
    OWNER,
    Key,
    decode_cursor,
    encode_cursor,
    ids,
    invalid,
    limit,
    offset,
    org_id,
    pagination,
    rfc3339_seconds,
    sort,
    v1,
    v1_seconds,
    v1_time,
    v2,
)
from connectors.pipedrive.simulator.writes import WRITE_COST, PersonWrites
from connectors.simulation import Limit, OAuthQuirks, Person, Refusal, SimulatorBase, decode_token, encode_token
from connectors.webhooks import WebhookRequest

__all__ = ["COSTS", "DEFAULT_TOKEN", "MAX_LIMIT", "PipedriveSimulator"]

DEFAULT_TOKEN = "4f1c9a7e2b8d3c6f0a5e9b1d7c2f8a4e6b0d3c9f"  # API tokens are 40 hex characters
MAX_LIMIT = 500
BURST_SECONDS = 2.0
DAY_MS = 86_400_000
RETENTION_MS = 30 * DAY_MS  # soft-deleted persons are purged 30 days later
EXPIRY_JUMP_MS = 31 * DAY_MS  # how far the clock jumps under `expire_tokens`
COSTS = {"v2_list": 10, "v2_get": 1, "v1_list": 20, "v1_get": 2, "recents": 20, "collection": 20, "changelog": 20}
COSTS["webhooks"] = 2  # tokens each request spends; v2 costs less than v1
COSTS |= {f"{version}_write": cost for version, cost in WRITE_COST.items()}
_RELATED = {"user": {str(OWNER["id"]): {"id": OWNER["id"], "name": OWNER["name"]}}}
_V1_SORT = re.compile(r"^\s*(id|name|first_name|last_name|add_time|update_time)(?:\s+(ASC|DESC))?\s*$", re.I)
_CLOUDFLARE = (
    b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head><body>"
    b"<h1>Sorry, you have been blocked</h1><p>You are unable to access pipedrive.com</p></body></html>"
)


class PipedriveSimulator(SimulatorBase):
    """Seeded persons with ids 1, 2, 3, ... (`Person.seq + 1`) behind Pipedrive's v1 and v2 URLs.

    `delete` is the soft delete (purged 30 days later); `merge` merges persons into one. API-token requests
    share `burst_limit` per 2 seconds, OAuth ones `oauth_burst_limit`; both spend `daily_tokens` (30,000 ×
    plan multiplier × seats).
    """

    connector = "pipedrive"
    oauth_quirks = OAuthQuirks(
        authorize_path="/oauth/authorize",
        token_path="/oauth/token",
        revoke_path="/oauth/revoke",
        base_url_field="api_domain",
    )
    counters = ("v2_list", "v2_get", "v1_list", "v1_get", "recents")
    fault_limit = "injected"
    server_error = (500, "internal", "Internal server error")
    malformed_body = b'{"success":true,"data":[{"id":'
    webhook_policy = POLICY

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        burst_limit: int = 20,
        oauth_burst_limit: int = 80,
        daily_tokens: int = 300_000,
        abuse_after: int = 10,
        account_open: bool = True,
        admin: bool = True,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        super().__init__(records, seed, token=token)
        self.burst_limit, self.daily_tokens, self.abuse_after = burst_limit, daily_tokens, abuse_after
        self.account_open, self.admin = account_open, admin  # closed: every request is a 402
        self.burst = self.rolling_window("burst", BURST_SECONDS, burst_limit)
        self.oauth_burst = self.rolling_window("burst", BURST_SECONDS, oauth_burst_limit)
        self.budget = self.daily_budget("daily", daily_tokens)
        self._ignored_429s = 0
        self._jumped = False  # whether `expire_tokens` moved the clock
        assert self.outbox is not None
        self.webhooks = Webhooks(self.outbox, self.clock)

    # -- SimulatorBase --------------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return str(person.seq + 1)

    def api_routes(self) -> list[BaseRoute]:
        writes = PersonWrites(self)
        routes: list[BaseRoute] = [
            self.route("/api/v2/persons", self._v2_list, "v2_list"),
            self.route("/api/v2/persons", writes.create, "v2_write", ["POST"]),
            self.route("/api/v2/persons/{id}", self._v2_get, "v2_get"),
            self.route("/api/v2/persons/{id}", writes.update, "v2_write", ["PATCH"]),
            self.route("/api/v2/persons/{id}", writes.delete, "v2_write", ["DELETE"]),
        ]
        for prefix in ("/api/v1", "/v1"):
            routes += [
                self.route(f"{prefix}/persons", self._v1_list, "v1_list"),
                self.route(f"{prefix}/persons", writes.create, "v1_write", ["POST"]),
                self.route(f"{prefix}/persons/collection", self._collection, "collection"),
                self.route(f"{prefix}/persons/{{id}}/changelog", self._changelog, "changelog"),
                self.route(f"{prefix}/persons/{{id}}", self._v1_get, "v1_get"),
                self.route(f"{prefix}/persons/{{id}}", writes.update, "v1_write", ["PUT"]),
                self.route(f"{prefix}/persons/{{id}}", writes.delete, "v1_write", ["DELETE"]),
                self.route(f"{prefix}/recents", self._recents, "recents"),
                self.route(f"{prefix}/webhooks", self._webhooks, "webhooks", ["GET", "POST"]),
                self.route(f"{prefix}/webhooks/{{id}}", self._webhook_delete, "webhooks", ["DELETE"]),
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
        if kind == "collection" and not self.admin:
            return Refusal(403, "forbidden", "You do not have permission to access this resource (admins only)")
        return None

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        return self._error(refused.status, refused.message, refused.headers, request)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """429 with Retry-After; a client that keeps ignoring 429s gets Cloudflare's 403 HTML page."""
        if limit == "injected":
            return self._error(429, "Request over limit", {"Retry-After": f"{wait:g}"}, request)
        self._ignored_429s += 1
        if self._ignored_429s > self.abuse_after:
            return Response(_CLOUDFLARE, 403, media_type="text/html", headers={"Date": self.headers(request)["Date"]})
        message = "Request over limit" if limit == "burst" else "Daily API token budget exceeded"
        return self._error(429, message, {"Retry-After": f"{wait:g}"}, request)

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        """One request of the token's 2-second burst window and the endpoint's cost in today's tokens."""
        return [(self._window_of(request), 1), (self.budget, COSTS[kind])]

    async def admit(self, request: Request, kind: str = "api") -> Response | None:
        """The base's admission; an admitted request forgives the 429s ignored before it."""
        early = await super().admit(request, kind)
        if early is None:
            with self.lock:
                self._ignored_429s = 0
        return early

    def headers(self, request: Request | None) -> dict[str, str]:
        window = self._window_of(request)
        shown = {
            "Date": formatdate(self.clock.time(), usegmt=True),
            "x-ratelimit-limit": str(window.capacity),
            "x-ratelimit-remaining": str(window.remaining()),
            "x-ratelimit-reset": str(max(1, round(window.resets_in()))),
        }
        if request is None or not _oauth(request):  # the POST/PUT fair-usage counter of API-token users
            shown["x-daily-requests-left"] = "10000"
        return shown

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, SecretStr]]:
        return {"base_url": base_url}, {"api_token": SecretStr(self.token)}

    def changed(self, kind: str, people: Sequence[Person]) -> None:
        self.webhooks.notify(kind, people)

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
            self._ignored_429s = 0
            if self._jumped:
                self.clock.advance(-EXPIRY_JUMP_MS / 1000)
                self._jumped = False

    def merge(self, primary: str, merged: Sequence[str]) -> list[str]:
        """Merge persons into `primary`; the merged ones are deleted, webhooks say so (v2: delete + change)."""
        with self.lock:
            kept = self.select([primary])
            gone = [p for p in self.select(merged) if kept and p.seq != kept[0].seq]
            if not kept or not gone:
                raise ValueError("merge needs a live primary and other live persons")
            self.people.merge(kept[0], gone)
            for person in gone:
                self.webhooks.notify("merged", [person], merged_to=kept[0])
            return [self.external_id(p) for p in gone]

    # -- v2 -------------------------------------------------------------------------------------------

    async def _v2_list(self, request: Request) -> Response:
        query = request.query_params
        page_limit = limit(query.get("limit"), over="reject")
        field, descending = sort(query.get("sort_by", "id"), query.get("sort_direction", "asc"))
        since, until = rfc3339_seconds(query.get("updated_since"), up=True), rfc3339_seconds(query.get("updated_until"))
        start, keep = decode_cursor(query.get("cursor"), field), self._v2_filter(query)
        custom, include = _custom_fields(query), _include_fields(query)
        with self.lock:
            if field == "update_time" and since is not None and not descending:
                start = max(start or (since, 0), (since, 0))
            keys, people = self._index(field, deleted=False)

            def wanted(person: Person) -> bool:
                updated = person.modified_ms // 1000
                return (since is None or updated >= since) and (until is None or updated < until) and keep(person)

            page, following = _scan(keys, people, start, descending, page_limit, wanted)
            cursor = encode_cursor(field, following) if following else None
            if query.get("cursor") and self.take_repeat():
                cursor = query["cursor"]
            data = [v2(p, custom, include) for p in page]
            body = {"success": True, "data": data, "additional_data": {"next_cursor": cursor}}
            return self._reply(body, request=request)

    async def _v2_get(self, request: Request) -> Response:
        raw: str = request.path_params["id"]
        if not raw.isascii() or not raw.isdigit():
            raise invalid("Validation failed: id: Parameter 'id' must be an integer")
        with self.lock:
            person = self.find(raw)
            if person is None or person.deleted:
                raise Refusal(404, "not_found", "Person not found")
            query = request.query_params
            shown = v2(person, _custom_fields(query), _include_fields(query))
            return self._reply({"success": True, "data": shown}, request=request)

    def _v2_filter(self, query: QueryParams) -> Callable[[Person], bool]:
        """`ids`, `owner_id`, `org_id` and `filter_id` (a saved filter)."""
        wanted, owner, org = ids(query.get("ids")), query.get("owner_id"), query.get("org_id")
        saved = _saved_filter(query.get("filter_id"))
        return lambda p: (
            (wanted is None or p.seq + 1 in wanted)
            and (owner is None or owner == str(OWNER["id"]))
            and (org is None or org == str(org_id(p.company)))
            and saved(p)
        )

    # -- v1 -------------------------------------------------------------------------------------------

    async def _v1_list(self, request: Request) -> Response:
        query = request.query_params
        start, page_limit = offset(query.get("start")), limit(query.get("limit"), over="cap")
        keep, order = _v1_filter(query), _v1_sort(query.get("sort"))
        with self.lock:
            _, everyone = self._index("id", deleted=False)
            people = [p for p in everyone if keep(p)]
            for key, descending in reversed(order):
                people.sort(key=key, reverse=descending)
            page = people[start : start + page_limit]
            following = start if "start" in query and self.take_repeat() else start + len(page)
            body = {
                "success": True,
                "data": [v1(p) for p in page] or None,  # an empty collection is `"data": null`
                "additional_data": {
                    "pagination": pagination(start, page_limit, start + page_limit < len(people), following)
                },
                "related_objects": _RELATED,
            }
            return self._reply(body, request=request)

    async def _v1_get(self, request: Request) -> Response:
        with self.lock:
            person = self.find(request.path_params["id"])
            if person is None or self._purged(person):
                raise Refusal(404, "not_found", "Person not found")
            return self._reply({"success": True, "data": v1(person), "related_objects": _RELATED}, request=request)

    async def _collection(self, request: Request) -> Response:
        """`GET /v1/persons/collection`: cursor-paged v1 persons (admins only), `since`/`until` in v1 times."""
        query = request.query_params
        page_limit = limit(query.get("limit"), over="reject", cap=1000)
        since = v1_seconds(query["since"], "since") if "since" in query else None
        until = v1_seconds(query["until"], "until") if "until" in query else None
        after = _position(query.get("cursor"))
        keep = _v1_filter(query)
        with self.lock:
            _, everyone = self._index("id", deleted=False)
            chosen = [
                p
                for p in everyone
                if p.seq + 1 > after
                and keep(p)
                and (since is None or p.modified_ms // 1000 >= since)
                and (until is None or p.modified_ms // 1000 < until)
            ]
            page = chosen[:page_limit]
            cursor = encode_token({"after": page[-1].seq + 1}) if len(chosen) > page_limit else None
            body = {"success": True, "data": [v1(p) for p in page], "additional_data": {"next_cursor": cursor}}
            return self._reply(body, request=request)

    async def _changelog(self, request: Request) -> Response:
        """`GET /v1/persons/{id}/changelog`: field changes, newest first, cursor-paged."""
        query = request.query_params
        page_limit, after = limit(query.get("limit"), over="reject"), _position(query.get("cursor"))
        with self.lock:
            person = self.find(request.path_params["id"])
            if person is None or self._purged(person):
                raise Refusal(404, "not_found", "Person not found")
            changes = list(reversed(person.history))[after : after + page_limit]
            entries = [_change_entry(c.field, c.old, c.new, c.at_ms) for c in changes]
            more = after + page_limit < len(person.history)
            cursor = encode_token({"after": after + page_limit}) if more else None
            body = {"success": True, "data": entries, "additional_data": {"next_cursor": cursor}}
            return self._reply(body, request=request)

    async def _recents(self, request: Request) -> Response:
        query = request.query_params
        since = v1_seconds(query.get("since_timestamp"))
        start, page_limit = offset(query.get("start")), limit(query.get("limit"), over="cap")
        with self.lock:
            keys, people = self._index("update_time", deleted=True)
            first = (
                bisect.bisect_left(keys, (since, 0))
                if "person" in query.get("items", "person").split(",")
                else len(keys)
            )
            page = people[first + start : first + start + page_limit]
            following = start if "start" in query and self.take_repeat() else start + len(page)
            items = [{"item": "person", "id": p.seq + 1, "data": v1(p)} for p in page]
            last = v1_time(page[-1].modified_ms) if page else query["since_timestamp"]
            additional = {
                "since_timestamp": query["since_timestamp"],
                "last_timestamp_on_page": last,
                "pagination": pagination(start, page_limit, first + start + page_limit < len(keys), following),
            }
            return self._reply({"success": True, "data": items or None, "additional_data": additional}, request=request)

    # -- webhooks -------------------------------------------------------------------------------------

    async def _webhooks(self, request: Request) -> Response:
        if request.method == "GET":
            with self.lock:
                self.webhooks.sweep()
                shown = [hook.shown() for hook in self.webhooks.hooks.values()]
            return self._reply({"status": "ok", "success": True, "data": shown}, request=request)
        raw = await request.body()
        body = (
            orjson.loads(raw) if request.headers.get("content-type", "").startswith("application/json") else _form(raw)
        )
        with self.lock:
            hook = self.webhooks.create(body if isinstance(body, dict) else {})
            return self._reply({"status": "ok", "success": True, "data": hook.shown()}, 201, request=request)

    async def _webhook_delete(self, request: Request) -> Response:
        raw: str = request.path_params["id"]
        with self.lock:
            self.webhooks.delete(int(raw) if raw.isdigit() else -1)
        return self._reply({"status": "ok", "success": True}, request=request)

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
            if version == "2.0":
                body = v2_event(v2(person), action, now_ms, 4321, 1, {})
            else:
                verb = {"create": "added", "change": "updated", "delete": "deleted"}[action]
                body = v1_event(v1(person), verb, now_ms, 4321, 0)
        headers = httpx.Headers({"content-type": "application/json", "user-agent": "Pipedrive Webhooks"})
        if auth is not None:
            headers["authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        return WebhookRequest("POST", "https://inlet.example/webhooks/pipedrive", headers, orjson.dumps(body))

    # -- answers, time and ordering -------------------------------------------------------------------

    def _error(
        self, status: int, message: str, headers: dict[str, str] | None = None, request: Request | None = None
    ) -> Response:
        info = "Please check developers.pipedrive.com for more information about Pipedrive API."
        body = {"success": False, "error": message, "errorCode": status, "error_info": info}
        return self._reply({**body, "data": None, "additional_data": None}, status, headers, request)

    def _reply(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None, request: Request | None = None
    ) -> Response:
        return self.answer(body, status, request, headers)

    def _window_of(self, request: Request | None) -> Any:
        return self.oauth_burst if request is not None and _oauth(request) else self.burst

    def _purged(self, person: Person) -> bool:
        """Soft-deleted persons are purged 30 days after deletion (merged ones at once)."""
        deleted = person.deleted_ms
        return person.purged or (deleted is not None and deleted < self.clock.now_ms() - RETENTION_MS)

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
    page_limit: int,
    wanted: Callable[[Person], bool],
) -> tuple[list[Person], Key | None]:
    """Up to `page_limit` wanted persons from `start` on, and the key of the next one (the next cursor)."""
    if descending:
        position, step = (bisect.bisect_right(keys, start) - 1 if start else len(keys) - 1), -1
    else:
        position, step = (bisect.bisect_left(keys, start) if start else 0), 1
    page: list[Person] = []
    while 0 <= position < len(keys):
        if wanted(people[position]):
            if len(page) == page_limit:
                return page, keys[position]
            page.append(people[position])
        position += step
    return page, None


def _v1_filter(query: QueryParams) -> Callable[[Person], bool]:
    """`filter_id` (a saved filter), `user_id` (the owner) and `first_char` (of the name)."""
    saved, user, char = _saved_filter(query.get("filter_id")), query.get("user_id"), query.get("first_char")
    if char is not None and len(char) != 1:
        raise invalid("Validation failed: first_char: must be one character")
    return lambda p: (
        saved(p) and (user is None or user == str(OWNER["id"])) and (char is None or p.first[0].lower() == char.lower())
    )


def _v1_sort(raw: str | None) -> list[tuple[Callable[[Person], Any], bool]]:
    """`sort=update_time ASC, id ASC`: first-level fields, each ascending or descending."""
    if not raw:
        return []
    keys = {"id": lambda p: p.seq, "name": lambda p: p.full_name, "first_name": lambda p: p.first}
    keys |= {"last_name": lambda p: p.last, "add_time": lambda p: p.created_ms // 1000}
    keys["update_time"] = lambda p: p.modified_ms // 1000
    order = []
    for part in raw.split(","):
        match = _V1_SORT.match(part)
        if match is None:
            raise invalid(f"Validation failed: sort: {part.strip()!r} is not a field with ASC or DESC")
        order.append((keys[match[1].lower()], (match[2] or "ASC").upper() == "DESC"))
    return order


def _saved_filter(raw: str | None) -> Callable[[Person], bool]:
    if raw is None:
        return lambda p: True
    if not raw.isdigit() or int(raw) not in FILTERS:
        raise Refusal(404, "not_found", "Filter not found")
    return FILTERS[int(raw)]


def _custom_fields(query: QueryParams) -> set[str] | None:
    raw = query.get("custom_fields")
    if raw is None:
        return None
    keys = {k.strip() for k in raw.split(",") if k.strip()}
    if len(keys) > 15:
        raise invalid("Validation failed: custom_fields: at most 15 keys")
    return keys


def _include_fields(query: QueryParams) -> tuple[str, ...]:
    raw = query.get("include_fields")
    names = tuple(n.strip() for n in raw.split(",") if n.strip()) if raw else ()
    if unknown := [n for n in names if n not in INCLUDE_FIELDS]:
        raise invalid(f"Validation failed: include_fields: {unknown[0]!r} is not one of {', '.join(INCLUDE_FIELDS)}")
    return names


def _position(cursor: str | None) -> int:
    if cursor is None:
        return 0
    state = decode_token(cursor)
    if not isinstance(state, dict) or not isinstance(state.get("after"), int):
        raise invalid("Invalid cursor")
    return int(state["after"])


def _change_entry(field: str, old: Any, new: Any, at_ms: int) -> dict[str, Any]:
    key = FIELD_KEYS[field]
    if key == "org_id":
        old, new = org_id(old) if old else None, org_id(new) if new else None
    return {
        "field_key": key,
        "old_value": old,
        "new_value": new,
        "actor_user_id": OWNER["id"],
        "time": v1_time(at_ms),
        "change_source": "app",
        "change_source_user_agent": None,
        "is_bulk_update_flag": False,
    }


def _oauth(request: Request) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


def _form(raw: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
