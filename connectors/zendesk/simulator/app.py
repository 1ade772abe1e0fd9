"""`ZendeskSimulator`: users (cursor and offset pages, filters), deleted users, the incremental exports and
their sample, the account's limits, and webhooks (`webhooks.py`)."""

from __future__ import annotations

import base64
import bisect
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.simulation import Limit, OAuthQuirks, Person, Refusal, RetryPolicy, SimClock, SimulatorBase
from connectors.zendesk.simulator.webhooks import Webhooks
from connectors.zendesk.simulator.wire import (
    DELETED_NAME,
    external_id_of,
    integer,
    invalid,
    iso,
    link,
    list_cursor,
    list_position,
    organization,
    organization_id,
    permission_set_of,
    role_of,
    seq_of,
    user_id,
)
from connectors.zendesk.simulator.writes import UserWrites

__all__ = ["ADMIN_EMAIL", "DEFAULT_TOKEN", "SAMPLE_SIZE", "ZendeskSimulator"]

DEFAULT_TOKEN = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"  # 40 characters, like a Zendesk API token
ADMIN_EMAIL = "admin@acme.example"
PAGE_SIZE_CAP = 100
OFFSET_PAGE_CAP = 100  # offset requests past the first 100 pages are refused since 2024
EXPORT_PAGE_SIZE = 1000  # default and cap of per_page on the exports [unverified]
SAMPLE_SIZE = 50
_EXPORT_CURSOR = re.compile(r"(\d+)\.(\d{3})\|(\d+)\|(\d*)\|")
_ROLES = ("end-user", "agent", "admin")
_EXPORTS = ("export", "sample")


@dataclass(frozen=True)
class _Index:
    """Positions for O(page) serving, rebuilt after each mutation."""

    live: list[int]  # seqs of listed users, ascending (= id order)
    deleted: list[int]  # seqs of deleted users, ascending
    order: list[tuple[int, int]]  # (modified_ms, seq) of everyone: the export's order


class ZendeskSimulator(SimulatorBase):
    """Seeded users behind a Starlette app (`.app`); user ids are integers derived from `Person.seq`.

    `export_lag_seconds` reproduces the export's exclusion of the last minute's changes (60 on the real
    API; 0 by default so tests see their own changes). `clock` drives the rate-limit windows. `delete` is a
    permanent (GDPR) deletion: `/users/{id}` answers 404, the export shows the user inactive with a scrubbed
    name (after `scrub_delay_seconds`). `soft_delete` is Zendesk's ordinary DELETE: the user stays readable
    with `active: false` and `restore` brings it back.
    """

    connector = "zendesk"
    oauth_quirks = OAuthQuirks(
        authorize_path="/oauth/authorizations/new",
        token_path="/oauth/tokens",
        revoke_path="/api/v2/oauth/tokens/current",
        revoke_method="DELETE",
        rotate_refresh=True,
    )
    fault_limit = "account"
    server_error = (500, "InternalServerError", "Internal Server Error")
    malformed_body = b'{"users":[{"id":372000000000,"url":"https://'  # a body cut off mid-transfer
    media_type = "application/json; charset=utf-8"
    required_scopes = frozenset({"read", "users:read"})
    webhook_policy = RetryPolicy(timeout=12.0)  # the spec documents no retries of webhook calls

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        email: str = ADMIN_EMAIL,
        role: str = "admin",
        rate_limit: int = 700,
        export_rate_limit: int = 10,
        export_lag_seconds: float = 0.0,
        sample_rate_limit: int = 10,
        scrub_delay_seconds: float = 0.0,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self.email, self.role = email, role
        self.rate_limit, self.export_rate_limit = rate_limit, export_rate_limit
        self.export_lag_seconds, self.scrub_delay_seconds = export_lag_seconds, scrub_delay_seconds
        self.suspended: set[int] = set()
        basic = base64.b64encode(f"{email}/token:{token}".encode()).decode()
        self._accepted = {f"Basic {basic}", f"Bearer {token}"}
        super().__init__(records, seed, token=token, clock=SimClock(monotonic=clock))
        self.account = self.rolling_window("account", 60.0, rate_limit)
        self.export = self.rolling_window("export", 60.0, export_rate_limit)
        self.sample = self.rolling_window("sample", 1200.0, sample_rate_limit)  # 10 requests per 20 minutes
        assert self.outbox is not None
        self.webhooks = Webhooks(self.outbox, self.clock, self.webhook_client)

    # -- SimulatorBase ----------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return str(user_id(person.seq))

    def api_routes(self) -> list[BaseRoute]:
        endpoints: list[tuple[str, Callable[[Request], Any], str]] = [
            ("/api/v2/users/show_many", self._show_many, "get"),
            ("/api/v2/users/{user_id}", self._show, "get"),
            ("/api/v2/users", self._list_users, "list"),
            ("/api/v2/deleted_users/{user_id}", self._show_deleted, "get"),
            ("/api/v2/deleted_users", self._list_deleted, "list"),
            ("/api/v2/incremental/users/cursor", self._export_cursor, "export"),
            ("/api/v2/incremental/users/sample", self._export_sample, "sample"),
            ("/api/v2/incremental/users", self._export_time, "export"),
        ]
        routes: list[BaseRoute] = [
            self.route(path + suffix, fn, kind) for path, fn, kind in endpoints for suffix in (".json", "")
        ]
        hooks, writes = "/api/v2/webhooks", UserWrites(self)
        write_endpoints: list[tuple[str, Callable[[Request], Any], str]] = [
            ("/api/v2/users/create_or_update", writes.create_or_update, "POST"),
            ("/api/v2/users", writes.create, "POST"),
            ("/api/v2/users/{user_id}", writes.update, "PUT"),
            ("/api/v2/users/{user_id}", writes.delete, "DELETE"),
        ]
        routes += [
            self.route(path + suffix, fn, "write", [method])
            for path, fn, method in write_endpoints
            for suffix in (".json", "")
        ]
        return [
            *routes,
            Route("/_sim/suspend", self._suspend_endpoint, methods=["POST"]),
            self.route(f"{hooks}/test", self._webhook_test, "webhooks", ["POST"]),
            self.route(hooks + "/{webhook_id}/signing_secret", self._webhook_secret, "webhooks", ["GET", "POST"]),
            self.route(hooks + "/{webhook_id}", self._webhook, "webhooks", ["GET", "PUT", "PATCH", "DELETE"]),
            self.route(hooks, self._webhook_collection, "webhooks", ["GET", "POST"]),
        ]

    def authenticate(self, request: Request) -> Response | None:
        """API-token Basic auth (`<email>/token:<token>`) or the bearer token."""
        if request.headers.get("authorization", "") in self._accepted:
            return None
        return self.refusal(request, self.unauthenticated(request, missing=False))

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "Couldn't authenticate you", "")

    def insufficient_scope(self, request: Request) -> Refusal:
        return Refusal(403, "Forbidden", "You do not have access to this page. Please contact the account owner.")

    def authorize(self, request: Request, kind: str) -> Refusal | None:
        if kind in _EXPORTS and self.role != "admin":
            return invalid("Forbidden", "You do not have access to this page. Please contact the account owner.", 403)
        return None

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        body = {"error": refused.code, "description": refused.message} if refused.message else {"error": refused.code}
        return self.answer({**body, **refused.details}, refused.status)  # details: a 422's per-field errors

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """A plain-text 429 with Retry-After (Zendesk sends whole seconds; faults may use fractions)."""
        what = {"export": "incremental export API requests", "sample": "sample export API requests"}
        message = f"Number of allowed {what.get(limit, 'API requests')} per minute exceeded"
        headers = {**self.headers(request), "Retry-After": f"{wait:g}"}
        return Response(message, 429, media_type="text/plain", headers=headers)

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        extra = {"export": self.export, "sample": self.sample}.get(kind)
        return [(self.account, 1), (extra, 1)] if extra else [(self.account, 1)]

    def headers(self, request: Request | None) -> dict[str, str]:
        return {"X-Rate-Limit": str(self.rate_limit), "X-Rate-Limit-Remaining": str(self.account.remaining())}

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, SecretStr]]:
        return {"base_url": base_url}, {
            "username": SecretStr(f"{self.email}/token"),
            "api_token": SecretStr(self.token),
        }

    def changed(self, kind: str, people: Sequence[Person]) -> None:
        self.webhooks.notify(kind, people)

    # -- the Python control API ---------------------------------------------------------------------

    def delete(self, ids: int | Sequence[str], *, by: str | None = None) -> list[str]:
        """A permanent (GDPR) deletion: `/users/{id}` answers 404; the user shows scrubbed in the exports."""
        with self.lock:
            return self._report("purged", self.people.purge(self.select(ids, deleted=True), by=by))

    def soft_delete(self, ids: int | Sequence[str], *, by: str | None = None) -> list[str]:
        """Zendesk's `DELETE /users/{id}`: the user stays readable with `active: false`."""
        return super().delete(ids, by=by)

    def suspend(self, ids: Sequence[str], suspended: bool = True) -> list[str]:
        """Suspend (or unsuspend) users: `suspended: true`, still active, not a deletion."""
        with self.lock:
            chosen = self.select(ids, deleted=True)
            (self.suspended.update if suspended else self.suspended.difference_update)(p.seq for p in chosen)
            self.people.update(chosen, {})  # suspension changes updated_at
            return [self.external_id(p) for p in chosen]

    # -- users --------------------------------------------------------------------------------------

    async def _list_users(self, request: Request) -> Response:
        with self.lock:
            return self._listing(request, "users", self._filtered(request.query_params, self._indexed().live))

    async def _list_deleted(self, request: Request) -> Response:
        with self.lock:
            return self._listing(request, "deleted_users", self._indexed().deleted)

    async def _show(self, request: Request) -> Response:
        with self.lock:
            person = self._person(request.path_params["user_id"])
            if person is None or person.purged:
                return self._not_found()
            return self.answer({"user": self._render(person, request)})

    async def _show_deleted(self, request: Request) -> Response:
        with self.lock:
            person = self._person(request.path_params["user_id"])
            if person is None or not person.deleted or person.purged:
                return self._not_found()
            return self.answer({"deleted_user": self._render(person, request)})

    async def _show_many(self, request: Request) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if len(ids) > PAGE_SIZE_CAP:
            raise invalid("InvalidValue", f"ids may list at most {PAGE_SIZE_CAP} users")  # [unverified]
        with self.lock:
            people = [p for p in map(self._person, ids) if p and not p.purged]
            return self.answer({"users": [self._render(p, request) for p in people]})

    def _filtered(self, params: QueryParams, seqs: list[int]) -> list[int]:
        """`role` / `role[]`, `permission_set` and `external_id` narrow the listing."""
        roles = params.getlist("role") + params.getlist("role[]")
        if unknown := [r for r in roles if r not in _ROLES]:
            raise invalid("InvalidValue", f"role {unknown[0]!r} is not one of {', '.join(_ROLES)}")
        permission_set, external = params.get("permission_set"), params.get("external_id")
        people = [self.people.all[seq] for seq in seqs]
        return [
            p.seq
            for p in people
            if (not roles or role_of(p) in roles)
            and (permission_set is None or str(permission_set_of(p)) == permission_set)
            and (external is None or external_id_of(p) == external)
        ]

    def _listing(self, request: Request, key: str, seqs: list[int]) -> Response:
        if any(name.startswith("page[") for name in request.query_params):
            return self._cursor_page(request, key, seqs)
        return self._offset_page(request, key, seqs)

    def _cursor_page(self, request: Request, key: str, seqs: list[int]) -> Response:
        params = request.query_params
        size = integer(params, "page[size]", PAGE_SIZE_CAP, high=PAGE_SIZE_CAP)
        after, before = params.get("page[after]"), params.get("page[before]")
        if before is not None:
            stop = bisect.bisect_left(seqs, list_position(before))
            start, has_more = max(0, stop - size), stop - size > 0
        else:
            start = 0 if after is None else bisect.bisect_right(seqs, list_position(after))
            stop, has_more = start + size, start + size < len(seqs)
        page = [self.people.all[seq] for seq in seqs[start:stop]]
        after_cursor = list_cursor(page[-1]) if page else None
        if after is not None and has_more and self.take_repeat():
            after_cursor = after  # a looping API: the same cursor again
        before_cursor = list_cursor(page[0]) if page else None
        to = link(request, size)
        body = {
            key: [self._render(p, request) for p in page],
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": to("page[after]", after_cursor) if after_cursor else None,
                "prev": to("page[before]", before_cursor) if before_cursor else None,
            },
        }
        return self.answer(body)

    def _offset_page(self, request: Request, key: str, seqs: list[int]) -> Response:
        params = request.query_params
        number = integer(params, "page", 1, high=sys.maxsize)
        per_page = min(integer(params, "per_page", PAGE_SIZE_CAP, high=sys.maxsize), PAGE_SIZE_CAP)  # [unverified]
        if number > OFFSET_PAGE_CAP:
            raise invalid(  # the status is documented, the body [unverified]
                "InvalidPaginationParameter",
                f"Offset pagination is limited to the first {OFFSET_PAGE_CAP} pages. Use cursor pagination instead.",
            )
        start = (number - 1) * per_page
        page = [self.people.all[seq] for seq in seqs[start : start + per_page]]

        def url(n: int) -> str:
            return str(request.url.replace_query_params(page=n, per_page=per_page))

        body = {
            key: [self._render(p, request) for p in page],
            "next_page": url(number + 1) if start + per_page < len(seqs) else None,
            "previous_page": url(number - 1) if number > 1 else None,
            "count": len(seqs),
        }
        return self.answer(body)

    # -- incremental exports ------------------------------------------------------------------------

    async def _export_cursor(self, request: Request) -> Response:
        params = request.query_params
        with self.lock:
            size = integer(params, "per_page", EXPORT_PAGE_SIZE, high=EXPORT_PAGE_SIZE)
            cursor = params.get("cursor")
            key = self._export_position(cursor) if cursor is not None else (self._start_time(params) * 1000, -1)
            order = self._indexed().order
            start, end = bisect.bisect_right(order, key), self._horizon(order)
            stop = min(start + size, max(start, end))
            page = [self.people.all[seq] for _, seq in order[start:stop]]
            after = self._export_token(order[stop - 1] if stop > start else key)
            if cursor is not None and stop < end and self.take_repeat():
                after = cursor  # a looping API: the same cursor again
            query = {"cursor": after, **({"per_page": str(size)} if "per_page" in params else {})}
            body = {
                "users": [self._render(p, request) for p in page],
                "after_url": str(request.url.replace(query=urlencode(query))),
                "after_cursor": after,
                "before_url": None,
                "before_cursor": None,
                "end_of_stream": stop >= end,
            }
            return self.answer(self._sideloaded(body, page, request))

    async def _export_time(self, request: Request) -> Response:
        return self._time_page(request, EXPORT_PAGE_SIZE)

    async def _export_sample(self, request: Request) -> Response:
        """The time-based export's format, at most 50 users, limited to 10 requests per 20 minutes."""
        return self._time_page(request, SAMPLE_SIZE)

    def _time_page(self, request: Request, cap: int) -> Response:
        params = request.query_params
        with self.lock:
            size = integer(params, "per_page", cap, high=EXPORT_PAGE_SIZE)
            start_time = self._start_time(params)
            order = self._indexed().order
            start, end = bisect.bisect_left(order, (start_time * 1000, -1)), self._horizon(order)
            stop = min(start + min(size, cap), max(start, end))
            while (
                cap == EXPORT_PAGE_SIZE and start < stop < end and order[stop][0] // 1000 == order[stop - 1][0] // 1000
            ):
                stop += 1  # a page keeps every record of its last second, so it may exceed per_page
            end_time = order[stop - 1][0] // 1000 if stop > start else start_time
            page = [self.people.all[seq] for _, seq in order[start:stop]]
            body = {
                "users": [self._render(p, request) for p in page],
                "next_page": str(request.url.replace_query_params(start_time=end_time)),  # overlaps: duplicates
                "count": stop - start,
                "end_time": end_time,
                "end_of_stream": stop >= end,
            }
            return self.answer(self._sideloaded(body, page, request))

    def _sideloaded(self, body: dict[str, Any], page: list[Person], request: Request) -> dict[str, Any]:
        """`include=organizations,identities` adds those records of the page's users."""
        wanted = {part.strip() for value in request.query_params.getlist("include") for part in value.split(",")}
        if "organizations" in wanted:
            body["organizations"] = list({organization_id(p): organization(p, request) for p in page}.values())
        if "identities" in wanted:
            body["identities"] = [identity for p in page for identity in self._identities(p)]
        return body

    def _export_position(self, cursor: str) -> tuple[int, int]:
        decoded = _export_cursor_parts(cursor)
        if decoded is None or self.token_expired(decoded[1]):
            # Zendesk does not document this answer; a 400 naming the cursor [unverified].
            raise invalid("InvalidPaginationParameter", f"cursor {cursor!r} is invalid or has expired")
        return decoded[0]

    def _export_token(self, key: tuple[int, int]) -> str:
        """`<epoch seconds>|<issue number>|<last id>|`, base64: the observed shape, plus an issue order."""
        ms, seq = key
        raw = f"{ms // 1000}.{ms % 1000:03d}|{self.issue_token()}|{'' if seq < 0 else user_id(seq)}|"
        return base64.b64encode(raw.encode()).decode()

    def _start_time(self, params: QueryParams) -> int:
        if "start_time" not in params:
            raise invalid("InvalidValue", "start_time or cursor is required")  # [unverified]
        start_time = integer(params, "start_time", 0, low=0, high=sys.maxsize)
        if start_time > self.clock.time() - max(self.export_lag_seconds, 0):
            raise invalid("InvalidValue", "start_time must be in the past")  # [unverified]
        return start_time

    def _horizon(self, order: list[tuple[int, int]]) -> int:
        """Where the export stops: changes of the last `export_lag_seconds` are left for a later request."""
        if self.export_lag_seconds <= 0:
            return len(order)
        return bisect.bisect_right(order, (int((self.clock.time() - self.export_lag_seconds) * 1000), sys.maxsize))

    # -- webhooks and control -----------------------------------------------------------------------

    async def _webhook_collection(self, request: Request) -> Response:
        return await self.webhooks.collection(request)

    async def _webhook(self, request: Request) -> Response:
        return await self.webhooks.one(request)

    async def _webhook_secret(self, request: Request) -> Response:
        return await self.webhooks.signing_secret(request)

    async def _webhook_test(self, request: Request) -> Response:
        return await self.webhooks.test(request)

    async def _suspend_endpoint(self, request: Request) -> Response:
        """`POST /_sim/suspend {"ids": [...], "suspended": true}`."""
        body = await request.json()
        return self.answer(
            {"suspended": self.suspend([str(i) for i in body.get("ids", [])], body.get("suspended", True))}
        )

    # -- rendering ----------------------------------------------------------------------------------

    def _not_found(self) -> Response:
        return self.answer({"error": "RecordNotFound", "description": "Not found"}, 404)

    def person(self, raw_id: str) -> Person | None:
        """The person behind a user id (deleted ones included)."""
        return self._person(raw_id)

    def render(self, person: Person, request: Request) -> dict[str, Any]:
        return self._render(person, request)

    def by_email(self, email: Any) -> Person | None:
        """The live user with this email (case-insensitive), if any."""
        if not isinstance(email, str) or not email:
            return None
        return next((p for p in self.people.live() if p.email.lower() == email.lower()), None)

    def _person(self, raw_id: str) -> Person | None:
        seq = seq_of(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else None
        return None if seq is None else self.people.get(seq)

    def _indexed(self) -> _Index:
        """Positions for O(page) serving, rebuilt after each mutation."""
        return self.people.view("index", self._index)

    def _index(self) -> _Index:
        everyone = self.people.all
        return _Index(
            live=[p.seq for p in everyone if not p.deleted],
            deleted=[p.seq for p in everyone if p.deleted],
            order=sorted((p.modified_ms, p.seq) for p in everyone),
        )

    def _scrubbed(self, person: Person) -> bool:
        """Permanently deleted, and renamed already (the rename lags `scrub_delay_seconds`)."""
        purged = person.purged_ms
        return purged is not None and self.clock.now_ms() >= purged + self.scrub_delay_seconds * 1000

    def _identities(self, person: Person) -> list[dict[str, Any]]:
        user, gone = user_id(person.seq), self._scrubbed(person)
        values = [("email", None if gone else person.email), ("phone_number", None if gone else person.phone)]
        return [
            {"id": user * 10 + n, "user_id": user, "type": kind, "value": value, "primary": True, "verified": True}
            for n, (kind, value) in enumerate(values)
            if value is not None
        ]

    def _render(self, person: Person, request: Request) -> dict[str, Any]:
        user, gone = user_id(person.seq), self._scrubbed(person)
        return {
            "id": user,
            "url": f"{request.url.scheme}://{request.url.netloc}/api/v2/users/{user}.json",
            "name": DELETED_NAME if gone else person.full_name,
            "email": None if gone else person.email,
            "created_at": iso(person.created_ms),
            "updated_at": iso(person.modified_ms),
            "time_zone": "London",
            "iana_time_zone": "Europe/London",
            "phone": None if gone else person.phone,
            "locale": "en-US",
            "organization_id": organization_id(person),
            "role": role_of(person),
            "custom_role_id": permission_set_of(person),
            "verified": True,
            "external_id": external_id_of(person),
            "tags": [],
            "active": not person.deleted,
            "suspended": person.seq in self.suspended,
            "last_login_at": None,
            "user_fields": {"company": None, "title": None}
            if gone
            else {"company": person.company, "title": person.title},
        }


def _export_cursor_parts(cursor: str) -> tuple[tuple[int, int], int] | None:
    """The (modified_ms, seq) position and the issue number of an export cursor; None if it is not one."""
    try:
        raw = base64.b64decode(cursor, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    match = _EXPORT_CURSOR.fullmatch(raw)
    if match is None:
        return None
    seq = seq_of(int(match[4])) if match[4] else -1
    return None if seq is None else ((int(match[1]) * 1000 + int(match[2]), seq), int(match[3]))
