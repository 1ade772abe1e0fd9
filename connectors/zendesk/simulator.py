"""An in-memory Zendesk Support users API (`api-specs/zendesk.md`), for tests, demos and benchmarks.

It serves, with or without the `.json` suffix:

    GET /api/v2/users                        cursor (`page[size]` <= 100) or offset (<= 100 pages) pagination
    GET /api/v2/users/{id}, /users/show_many {"user": {...}} / {"users": [...]}
    GET /api/v2/deleted_users[/{id}]         soft- and permanently deleted users
    GET /api/v2/incremental/users/cursor     cursor export: start_time, then cursor; end_of_stream
    GET /api/v2/incremental/users            time-based export: start_time/end_time, boundary duplicates

API-token Basic auth (`<email>/token:<token>`) or a Bearer token, the incremental export for admins only
at 10 requests a minute, an account-wide per-minute limit with `X-Rate-Limit*` headers, and plain-text
429s with Retry-After. `delete` is a permanent (GDPR) deletion: `/users/{id}` answers 404, the export shows
the user with `active: false` and a scrubbed name. `soft_delete` is Zendesk's ordinary DELETE: the user stays
readable with `active: false`.

    python -m connectors.zendesk.simulator --port 8430 --records 1000
"""

from __future__ import annotations

import base64
import bisect
import re
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from connectors.simulation import (
    Limit,
    OAuthQuirks,
    Person,
    Refusal,
    SimClock,
    SimulatorBase,
    serve,
    with_knobs,
)

__all__ = ["ADMIN_EMAIL", "DEFAULT_TOKEN", "ZendeskSimulator", "main", "make_simulator"]

DEFAULT_TOKEN = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"  # 40 characters, like a Zendesk API token
ADMIN_EMAIL = "admin@acme.example"
PAGE_SIZE_CAP = 100
OFFSET_PAGE_CAP = 100  # offset requests past the first 100 pages are refused since 2024
EXPORT_PAGE_SIZE = 1000  # default and cap of per_page on the exports [unverified]
_FIRST_ID = 372_000_000_000
_ID_STEP = 17
_DELETED_NAME = "Permanently Deleted User"
_LIST_CURSOR = re.compile(r"h\$(\d+)~\d+")
_EXPORT_CURSOR = re.compile(r"(\d+)\.(\d{3})\|(\d+)\|(\d*)\|")


def _invalid(error: str, description: str, status: int = 400) -> Refusal:
    """A request Zendesk answers with a 4xx `{"error": ..., "description": ...}`."""
    return Refusal(status, error, description)


@dataclass(frozen=True)
class _Index:
    """Positions for O(page) serving, rebuilt after each mutation."""

    live: list[int]  # seqs of listed users, ascending (= id order)
    deleted: list[int]  # seqs of deleted users, ascending
    order: list[tuple[int, int]]  # (modified_ms, seq) of everyone: the export's order


class ZendeskSimulator(SimulatorBase):
    """Seeded users behind a Starlette app (`.app`); user ids are integers derived from `Person.seq`.

    `export_lag_seconds` reproduces the export's exclusion of the last minute's changes (60 on the real
    API; 0 by default so tests see their own changes). `clock` drives the rate-limit windows.
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
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self.email, self.role = email, role
        self.rate_limit = rate_limit
        self.export_rate_limit = export_rate_limit
        self.export_lag_seconds = export_lag_seconds
        self._soft: set[int] = set()  # seqs deleted softly; other deleted people are permanently deleted
        basic = base64.b64encode(f"{email}/token:{token}".encode()).decode()
        self._accepted = {f"Basic {basic}", f"Bearer {token}"}
        super().__init__(records, seed, token=token, clock=SimClock(monotonic=clock))
        self.account = self.rolling_window("account", 60.0, rate_limit)
        self.export = self.rolling_window("export", 60.0, export_rate_limit)

    # -- SimulatorBase ----------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return str(_user_id(person.seq))

    def api_routes(self) -> list[BaseRoute]:
        endpoints: list[tuple[str, Callable[[Request], Any], str]] = [
            ("/api/v2/users/show_many", self._show_many, "get"),
            ("/api/v2/users/{user_id}", self._show, "get"),
            ("/api/v2/users", self._list_users, "list"),
            ("/api/v2/deleted_users/{user_id}", self._show_deleted, "get"),
            ("/api/v2/deleted_users", self._list_deleted, "list"),
            ("/api/v2/incremental/users/cursor", self._export_cursor, "export"),
            ("/api/v2/incremental/users", self._export_time, "export"),
        ]
        return [self.route(path + suffix, fn, kind) for path, fn, kind in endpoints for suffix in (".json", "")]

    def authenticate(self, request: Request) -> Response | None:
        """API-token Basic auth (`<email>/token:<token>`) or the bearer token."""
        if request.headers.get("authorization", "") in self._accepted:
            return None
        return self.refusal(request, self.unauthenticated(request, missing=False))

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "Couldn't authenticate you", "")

    def authorize(self, request: Request, kind: str) -> Refusal | None:
        if kind == "export" and self.role != "admin":
            return _invalid("Forbidden", "You do not have access to this page. Please contact the account owner.", 403)
        return None

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        body = {"error": refused.code, "description": refused.message} if refused.message else {"error": refused.code}
        return self.answer(body, refused.status)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """A plain-text 429 with Retry-After (Zendesk sends whole seconds; faults may use fractions)."""
        what = "incremental export API requests" if limit == "export" else "API requests"
        headers = {**self.headers(request), "Retry-After": f"{wait:g}"}
        return Response(f"Number of allowed {what} per minute exceeded", 429, media_type="text/plain", headers=headers)

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        return [(self.account, 1), (self.export, 1)] if kind == "export" else [(self.account, 1)]

    def headers(self, request: Request | None) -> dict[str, str]:
        return {"X-Rate-Limit": str(self.rate_limit), "X-Rate-Limit-Remaining": str(self.account.remaining())}

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, SecretStr]]:
        return {"base_url": base_url}, {
            "username": SecretStr(f"{self.email}/token"),
            "api_token": SecretStr(self.token),
        }

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.account.clear()
            self.export.clear()

    def soft_delete(self, ids: int | Sequence[str]) -> list[str]:
        """Zendesk's `DELETE /users/{id}`: the user stays readable with `active: false`."""
        with self.lock:
            deleted = self.delete(ids)
            self._soft.update(p.seq for p in map(self.find, deleted) if p is not None)
            return deleted

    # -- users --------------------------------------------------------------------------------------

    async def _list_users(self, request: Request) -> Response:
        with self.lock:
            return self._listing(request, "users", self._indexed().live)

    async def _list_deleted(self, request: Request) -> Response:
        with self.lock:
            return self._listing(request, "deleted_users", self._indexed().deleted)

    async def _show(self, request: Request) -> Response:
        with self.lock:
            person = self._person(request.path_params["user_id"])
            if person is None or (person.deleted and person.seq not in self._soft):
                return self._not_found()
            return self._json({"user": self._render(person, request)})

    async def _show_deleted(self, request: Request) -> Response:
        with self.lock:
            person = self._person(request.path_params["user_id"])
            if person is None or person.seq not in self._soft:
                return self._not_found()
            return self._json({"deleted_user": self._render(person, request)})

    async def _show_many(self, request: Request) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if len(ids) > PAGE_SIZE_CAP:
            raise _invalid("InvalidValue", f"ids may list at most {PAGE_SIZE_CAP} users")  # [unverified]
        with self.lock:
            people = [p for p in map(self._person, ids) if p and (not p.deleted or p.seq in self._soft)]
            return self._json({"users": [self._render(p, request) for p in people]})

    def _listing(self, request: Request, key: str, seqs: list[int]) -> Response:
        params = request.query_params
        if any(name.startswith("page[") for name in params):
            return self._cursor_page(request, key, seqs)
        return self._offset_page(request, key, seqs)

    def _cursor_page(self, request: Request, key: str, seqs: list[int]) -> Response:
        params = request.query_params
        size = _int(params, "page[size]", PAGE_SIZE_CAP, high=PAGE_SIZE_CAP)
        after, before = params.get("page[after]"), params.get("page[before]")
        if before is not None:
            stop = bisect.bisect_left(seqs, _list_position(before))
            start, has_more = max(0, stop - size), stop - size > 0
        else:
            start = 0 if after is None else bisect.bisect_right(seqs, _list_position(after))
            stop, has_more = start + size, start + size < len(seqs)
        page = [self.people.all[seq] for seq in seqs[start:stop]]
        after_cursor = _list_cursor(page[-1]) if page else None
        if after is not None and has_more and self.take_repeat():
            after_cursor = after  # a looping API: the same cursor again
        before_cursor = _list_cursor(page[0]) if page else None
        link = _link(request, size)
        body = {
            key: [self._render(p, request) for p in page],
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": link("page[after]", after_cursor) if after_cursor else None,
                "prev": link("page[before]", before_cursor) if before_cursor else None,
            },
        }
        return self._json(body)

    def _offset_page(self, request: Request, key: str, seqs: list[int]) -> Response:
        params = request.query_params
        number = _int(params, "page", 1, high=sys.maxsize)
        per_page = min(_int(params, "per_page", PAGE_SIZE_CAP, high=sys.maxsize), PAGE_SIZE_CAP)  # [unverified]
        if number > OFFSET_PAGE_CAP:
            raise _invalid(  # the status is documented, the body [unverified]
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
        return self._json(body)

    # -- incremental exports ------------------------------------------------------------------------

    async def _export_cursor(self, request: Request) -> Response:
        params = request.query_params
        with self.lock:
            size = _int(params, "per_page", EXPORT_PAGE_SIZE, high=EXPORT_PAGE_SIZE)
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
            return self._json(body)

    async def _export_time(self, request: Request) -> Response:
        params = request.query_params
        with self.lock:
            size = _int(params, "per_page", EXPORT_PAGE_SIZE, high=EXPORT_PAGE_SIZE)
            start_time = self._start_time(params)
            order = self._indexed().order
            start, end = bisect.bisect_left(order, (start_time * 1000, -1)), self._horizon(order)
            stop = min(start + size, max(start, end))
            while start < stop < end and order[stop][0] // 1000 == order[stop - 1][0] // 1000:
                stop += 1  # a page keeps every record of its last second, so it may exceed per_page
            end_time = order[stop - 1][0] // 1000 if stop > start else start_time
            body = {
                "users": [self._render(self.people.all[seq], request) for _, seq in order[start:stop]],
                "next_page": str(request.url.replace_query_params(start_time=end_time)),  # overlaps: duplicates
                "count": stop - start,
                "end_time": end_time,
                "end_of_stream": stop >= end,
            }
            return self._json(body)

    def _export_position(self, cursor: str) -> tuple[int, int]:
        decoded = _export_cursor_parts(cursor)
        if decoded is None or self.token_expired(decoded[1]):
            # Zendesk does not document this answer; a 400 naming the cursor [unverified].
            raise _invalid("InvalidPaginationParameter", f"cursor {cursor!r} is invalid or has expired")
        return decoded[0]

    def _export_token(self, key: tuple[int, int]) -> str:
        """`<epoch seconds>|<issue number>|<last id>|`, base64: the observed shape, plus an issue order."""
        ms, seq = key
        raw = f"{ms // 1000}.{ms % 1000:03d}|{self.issue_token()}|{'' if seq < 0 else _user_id(seq)}|"
        return base64.b64encode(raw.encode()).decode()

    def _start_time(self, params: QueryParams) -> int:
        if "start_time" not in params:
            raise _invalid("InvalidValue", "start_time or cursor is required")  # [unverified]
        start_time = _int(params, "start_time", 0, low=0, high=sys.maxsize)
        if start_time > self.clock.time() - max(self.export_lag_seconds, 0):
            raise _invalid("InvalidValue", "start_time must be in the past")  # [unverified]
        return start_time

    def _horizon(self, order: list[tuple[int, int]]) -> int:
        """Where the export stops: changes of the last `export_lag_seconds` are left for a later request."""
        if self.export_lag_seconds <= 0:
            return len(order)
        return bisect.bisect_right(order, (int((self.clock.time() - self.export_lag_seconds) * 1000), sys.maxsize))

    # -- rendering ----------------------------------------------------------------------------------

    def _json(self, body: Any, status: int = 200) -> Response:
        return self.answer(body, status)

    def _not_found(self) -> Response:
        return self._json({"error": "RecordNotFound", "description": "Not found"}, 404)

    def _person(self, raw_id: str) -> Person | None:
        seq = _seq(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else None
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

    def _render(self, person: Person, request: Request) -> dict[str, Any]:
        user_id, gone = _user_id(person.seq), person.deleted and person.seq not in self._soft
        return {
            "id": user_id,
            "url": f"{request.url.scheme}://{request.url.netloc}/api/v2/users/{user_id}.json",
            "name": _DELETED_NAME if gone else person.full_name,
            "email": None if gone else person.email,
            "created_at": _iso(person.created_ms),
            "updated_at": _iso(person.modified_ms),
            "time_zone": "London",
            "iana_time_zone": "Europe/London",
            "phone": None if gone else person.phone,
            "locale": "en-US",
            "organization_id": 360_000_000 + zlib.crc32(person.company.encode()) % 1_000_000,
            "role": "end-user",
            "verified": True,
            "external_id": None,
            "tags": [],
            "active": not person.deleted,
            "suspended": False,
            "last_login_at": None,
            "user_fields": {"company": None, "title": None}
            if gone
            else {"company": person.company, "title": person.title},
        }


def _user_id(seq: int) -> int:
    return _FIRST_ID + seq * _ID_STEP


def _seq(user_id: int) -> int | None:
    offset = user_id - _FIRST_ID
    return offset // _ID_STEP if offset >= 0 and offset % _ID_STEP == 0 else None


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _int(params: QueryParams, name: str, default: int, *, low: int = 1, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        limit = f"between {low} and {high}" if high < sys.maxsize else f"at least {low}"
        raise _invalid("InvalidPaginationParameter", f"{name} must be an integer {limit}")  # body [unverified]
    return int(raw)


def _list_cursor(person: Person) -> str:
    """`h$<id>~<epoch seconds>`, base64url without padding: the shape of Zendesk's list cursors."""
    raw = f"h${_user_id(person.seq)}~{person.modified_ms // 1000}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _list_position(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    match = _LIST_CURSOR.fullmatch(raw)
    seq = _seq(int(match[1])) if match else None
    if seq is None:
        raise _invalid("InvalidPaginationParameter", f"page cursor {cursor!r} is invalid")  # body [unverified]
    return seq


def _export_cursor_parts(cursor: str) -> tuple[tuple[int, int], int] | None:
    """The (modified_ms, seq) position and the issue number of an export cursor; None if it is not one."""
    try:
        raw = base64.b64decode(cursor, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    match = _EXPORT_CURSOR.fullmatch(raw)
    if match is None:
        return None
    seq = _seq(int(match[4])) if match[4] else -1
    return None if seq is None else ((int(match[1]) * 1000 + int(match[2]), seq), int(match[3]))


def _link(request: Request, size: int) -> Callable[[str, str], str]:
    def link(name: str, cursor: str) -> str:
        return str(request.url.replace(query=urlencode({name: cursor, "page[size]": size})))

    return link


make_simulator = ZendeskSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(ZendeskSimulator, argv, "Serve a simulated Zendesk Support users API."))


if __name__ == "__main__":
    main()
