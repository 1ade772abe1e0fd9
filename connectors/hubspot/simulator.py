"""An in-memory HubSpot CRM v3 contacts API on `SimulatorBase`, for tests, demos and benchmarks.

It serves `GET /crm/v3/objects/contacts`, `GET /crm/v3/objects/contacts/{id}` and
`POST /crm/v3/objects/contacts/search` as `api-specs/hubspot.md` describes them: bearer auth, an opaque
`after` cursor, no `paging` key on the last page, archived-only listings, rate-limit headers and
`policyName` 429 bodies without `Retry-After`, a 10-second window and a daily limit; search with
filter groups, one sort, `limit` ≤ 200, `total`, the 10,000-result cap and an optional index lag.

The `expire_tokens` fault has no HubSpot counterpart and changes nothing here: HubSpot hands out no
incremental token, the client keeps a `lastmodifieddate` watermark and search accepts any value of it.

    python -m connectors.hubspot.simulator --port 8410 --records 1000 --seed 7 --token X [--rate-limit 100]
"""

from __future__ import annotations

import argparse
import bisect
import collections
import functools
import logging
import operator
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import orjson
from pydantic import SecretStr
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.oauth_simulation import OAuthQuirks
from connectors.simulation import Person, SimulatorBase, json_response, serve

__all__ = [
    "DEFAULT_PROPERTIES",
    "DEFAULT_TOKEN",
    "MAX_LIMIT",
    "MAX_SEARCH_LIMIT",
    "SEARCH_CAP",
    "HubSpotSimulator",
    "main",
    "make_simulator",
]

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "pat-na1-demo-token"
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
MAX_LIMIT = 100
MAX_SEARCH_LIMIT = 200
SEARCH_CAP = 10_000  # results one search query can page through
_MAX_GROUPS, _MAX_GROUP_FILTERS, _MAX_FILTERS = 5, 10, 25  # the Aug 2024 changelog's limits
_NOT_FOUND = "Object not found.  objectId are usually numeric."
_BAD_CREDENTIALS = "Authentication credentials not found or invalid. Send a private app or OAuth 2.0 token."
_NO_API_KEYS = "API keys (hapikey) were retired; send a private app token as a Bearer token."
_TRUNCATED = b'{"results": [{"id": "'  # what a proxy cutting the connection mid-body leaves behind
_FIRST_ID, _ID_STEP = 10_000_000_000, 7
_EPOCH = datetime(1970, 1, 1)  # naive, so isoformat() has no offset and we can append "Z"
_DATES = frozenset({"createdate", "lastmodifieddate"})
_VALUES: dict[str, Callable[[Person], int | str | None]] = {  # typed property values, for search
    "createdate": lambda p: p.created_ms,
    "email": lambda p: p.email,
    "firstname": lambda p: p.first,
    "hs_object_id": lambda p: _object_id(p.seq),
    "lastmodifieddate": lambda p: p.modified_ms,
    "lastname": lambda p: p.last,
    "phone": lambda p: p.phone,
    "company": lambda p: p.company,
    "jobtitle": lambda p: p.title,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq,
    "NEQ": operator.ne,
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


class _Invalid(ValueError):
    """A request the real API would answer with 400 VALIDATION_ERROR."""


class HubSpotSimulator(SimulatorBase):
    """Seeded contacts behind a Starlette app (`.app`); the same seed gives the same contacts.

    Contact ids are ascending strings of 11-digit integers; every property value is a string or null.
    Searches count toward the daily limit and, when `search_per_second` is set, their own secondly limit.
    """

    connector = "hubspot"
    oauth_quirks = OAuthQuirks(
        authorize_path="/oauth/authorize",
        token_path="/oauth/v1/token",
        revoke_path="/oauth/v1/refresh-tokens/{token}",
        revoke_method="DELETE",
        invalid_grant=lambda: (400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}),
    )
    tokens_expire = False  # the token is a lastmodifieddate watermark; search takes any value

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        token: str = DEFAULT_TOKEN,
        rate_limit: int = 190,
        rate_interval_ms: int = 10_000,
        daily_limit: int = 1_000_000,
        cap_oversized_limit: bool = False,
        index_lag_ms: int = 0,
        search_per_second: int = 0,
    ) -> None:
        self.rate_limit, self.rate_interval_ms, self.daily_limit = rate_limit, rate_interval_ms, daily_limit
        self.cap_oversized_limit, self.index_lag_ms, self.search_per_second = (
            cap_oversized_limit,
            index_lag_ms,
            search_per_second,
        )
        self._window: collections.deque[float] = collections.deque()
        self._search_window: collections.deque[float] = collections.deque()
        super().__init__(records, seed, token=token)
        self._live = [_object_id(p.seq) for p in self.people.all]
        self._archived: list[int] = []
        self._by_email = {p.email: p for p in self.people.all}
        self.app.add_exception_handler(_Invalid, _invalid_handler)
        self.reset()

    # -- SimulatorBase -----------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return str(_object_id(person.seq))

    def api_routes(self) -> list[BaseRoute]:
        return [
            Route("/crm/v3/objects/contacts", self._list_endpoint, methods=["GET"]),
            Route("/crm/v3/objects/contacts/search", self._search_endpoint, methods=["POST"]),
            Route("/crm/v3/objects/contacts/{contact_id}", self._get_endpoint, methods=["GET"]),
        ]

    def authenticate(self, request: Request) -> Response | None:
        if "hapikey" in request.query_params:
            return _error(401, _NO_API_KEYS, "INVALID_AUTHENTICATION")
        if request.headers.get("authorization", "") != f"Bearer {self.token}":
            return _error(401, _BAD_CREDENTIALS, "INVALID_AUTHENTICATION")
        return None

    def fault_response(self, fault: str) -> Response:
        if fault == "status_429":
            return _rate_limited("TEN_SECONDLY_ROLLING", self._rate_headers())
        if fault == "status_500":
            return _error(500, "internal error", "INTERNAL_ERROR")
        return Response(_TRUNCATED, media_type="application/json", headers=self._rate_headers())

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, SecretStr]]:
        return {"base_url": base_url}, {"token": SecretStr(self.token)}

    async def admit(self, request: Request, kind: str = "api") -> Response | None:
        """The base's checks (auth, faults, slowness), then HubSpot's rate limits."""
        early = await super().admit(request, kind)
        if early is None:
            with self.lock:
                early = self._consume_rate(search=kind == "search_requests")
        return early

    # -- the Python control API --------------------------------------------------------------------

    def create(self, n: int) -> list[str]:
        """Add `n` live contacts created now; return their ids (larger than every earlier one)."""
        with self.lock:
            created = super().create(_count(n))
            for contact_id in created:
                self._live.append(int(contact_id))
                self._by_email[self._person(contact_id).email] = self._person(contact_id)
            return created

    def delete(self, ids: int | Sequence[str]) -> list[str]:
        """Archive the given live ids (or `ids` random ones) like `DELETE .../contacts/{id}` does."""
        with self.lock:
            archived = super().delete(ids)
            for contact_id in archived:
                del self._live[bisect.bisect_left(self._live, int(contact_id))]
                bisect.insort(self._archived, int(contact_id))
            return archived

    def ids(self, *, archived: bool = False) -> list[str]:
        """All live (or archived) ids in ascending order."""
        with self.lock:
            return [str(oid) for oid in (self._archived if archived else self._live)]

    def inject(self, **faults: Any) -> None:
        """Add faults after checking their values: counts are non-negative integers, seconds non-negative."""
        for name, value in faults.items():
            if name in ("status_429", "status_500", "malformed", "repeat_token"):
                _count(value)
            elif name in ("slow_seconds", "retry_after") and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise _Invalid(f"{name} must be a non-negative number")
        super().inject(**faults)

    def stats(self) -> dict[str, int]:
        """Requests received (errors included) by kind, and live/archived record counts."""
        with self.lock:
            return {**self.counts, "records": len(self._live), "archived": len(self._archived)}

    def reset(self) -> None:
        """Clear faults, request counters and rate-limit usage; the data stays."""
        with self.lock:
            super().reset()
            self.counts = {"requests": 0, "list_requests": 0, "get_requests": 0}
            self._window.clear()
            self._search_window.clear()
            self._day, self._daily_used = datetime.now(UTC).date(), 0

    # -- CRM endpoints -----------------------------------------------------------------------------

    async def _list_endpoint(self, request: Request) -> Response:
        if (early := await self.admit(request, "list_requests")) is not None:
            return early
        params = request.query_params
        limit, names = _page_size(params.get("limit"), MAX_LIMIT, self.cap_oversized_limit), _names(params)
        after = params.get("after")
        with self.lock:
            ids = self._archived if _archived(params) else self._live
            start = bisect.bisect_left(ids, _cursor(after))
            page = ids[start : start + limit]
            body: dict[str, Any] = {"results": [self._render(self._person(str(oid)), names) for oid in page]}
            if start + limit < len(ids):
                nxt = after if after is not None and self.take_repeat() else str(ids[start + limit])
                link = str(request.url.include_query_params(after=nxt))
                body["paging"] = {"next": {"after": nxt, "link": link}}
            return json_response(body, headers=self._rate_headers())

    async def _get_endpoint(self, request: Request) -> Response:
        if (early := await self.admit(request, "get_requests")) is not None:
            return early
        raw_id: str = request.path_params["contact_id"]
        params = request.query_params
        with self.lock:
            person = self._resolve(raw_id, params.get("idProperty"))
            if person is None or person.deleted != _archived(params):
                return _error(404, _NOT_FOUND, "OBJECT_NOT_FOUND", context={"id": [raw_id]})
            return json_response(self._render(person, _names(params)), headers=self._rate_headers())

    async def _search_endpoint(self, request: Request) -> Response:
        """Live contacts matching the filter groups, sorted by one property; no rate-limit headers."""
        if (early := await self.admit(request, "search_requests")) is not None:
            return early
        query = _json_object(await request.body())
        groups, names = _filter_groups(query.get("filterGroups", [])), _search_names(query.get("properties"))
        sort_key, descending = _sort(query.get("sorts", []))
        limit = _page_size(query.get("limit"), MAX_SEARCH_LIMIT, self.cap_oversized_limit)
        after = _cursor(query.get("after"))
        if after + limit > SEARCH_CAP:
            raise _Invalid(f"a search can page through at most {SEARCH_CAP} results; narrow the filters instead")
        with self.lock:
            visible = time.time() * 1000 - self.index_lag_ms
            hits = [
                p
                for p in self.people.all
                if not p.deleted
                and (not self.index_lag_ms or p.modified_ms <= visible)
                and (not groups or any(all(test(p) for test in group) for group in groups))
            ]
            hits.sort(key=sort_key, reverse=descending)
            page = hits[after : after + limit]
            body: dict[str, Any] = {"total": len(hits), "results": [self._render(p, names) for p in page]}
            if after + len(page) < len(hits):
                repeat = "after" in query and self.take_repeat()
                body["paging"] = {"next": {"after": str(query["after"]) if repeat else str(after + len(page))}}
        return json_response(body)

    async def _mutate(self, request: Request) -> Response:
        """The base's `/_sim/mutate`, after checking the body is {create: n, update: n|ids, delete: n|ids}."""
        body = _json_object(await request.body() or b"{}")
        if not set(body) <= {"create", "update", "delete"}:
            raise _Invalid("body keys must be create, update and delete")
        _count(body.get("create", 0))
        _selection(body.get("update"))
        _selection(body.get("delete"))
        return await super()._mutate(request)

    # -- helpers -----------------------------------------------------------------------------------

    def _person(self, contact_id: str) -> Person:
        person = self.find(contact_id)
        assert person is not None, contact_id
        return person

    def _render(self, person: Person, names: Sequence[str]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.external_id(person),
            "properties": {name: _shown(name, _VALUES[name](person)) for name in names},
            "createdAt": _iso(person.created_ms),
            "updatedAt": _iso(person.modified_ms),
            "archived": person.deleted,
        }
        if person.deleted_ms is not None:
            record["archivedAt"] = _iso(person.deleted_ms)
        return record

    def _resolve(self, raw_id: str, id_property: str | None) -> Person | None:
        if id_property == "email":
            return self._by_email.get(raw_id.lower())
        if id_property not in (None, "hs_object_id"):
            raise _Invalid(f"idProperty {id_property!r} is not a unique property of contacts")
        return self.find(raw_id)

    def _consume_rate(self, *, search: bool) -> Response | None:
        now, today = time.monotonic(), datetime.now(UTC).date()
        if today != self._day:
            self._day, self._daily_used = today, 0
        if self._daily_used >= self.daily_limit:
            return _rate_limited("DAILY", {} if search else self._rate_headers())
        if search:
            if self.search_per_second and not _fits(self._search_window, now, 1.0, self.search_per_second):
                return _rate_limited("SECONDLY", {})
        elif not _fits(self._window, now, self.rate_interval_ms / 1000, self.rate_limit):
            return _rate_limited("TEN_SECONDLY_ROLLING", self._rate_headers())
        self._daily_used += 1
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self._daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.rate_interval_ms),
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(self.rate_limit - len(self._window), 0)),
        }


def make_simulator(records: int = 100, seed: int | str = 0, token: str = DEFAULT_TOKEN) -> HubSpotSimulator:
    """A seeded simulator with HubSpot's Enterprise limits (190 per 10 s), as the contract suite uses it."""
    return HubSpotSimulator(records, seed, token=token)


# -- search ----------------------------------------------------------------------------------------


def _filter_groups(raw: Any) -> list[list[Callable[[Person], bool]]]:
    """Groups are ORed, the filters inside one group ANDed."""
    if not isinstance(raw, list) or any(not isinstance(g, dict) or not isinstance(g.get("filters"), list) for g in raw):
        raise _Invalid("filterGroups must be a list of {filters: [...]}")
    sizes = [len(group["filters"]) for group in raw]
    if len(raw) > _MAX_GROUPS or max(sizes, default=0) > _MAX_GROUP_FILTERS or sum(sizes) > _MAX_FILTERS:
        raise _Invalid(f"at most {_MAX_GROUPS} filter groups of {_MAX_GROUP_FILTERS}, {_MAX_FILTERS} filters in all")
    return [[_predicate(f) for f in group["filters"]] for group in raw]


def _predicate(spec: Any) -> Callable[[Person], bool]:
    if not isinstance(spec, dict) or not isinstance(spec.get("propertyName"), str):
        raise _Invalid("each filter needs a propertyName")
    name, op = spec["propertyName"], spec.get("operator")
    get = _VALUES.get(name, _no_value)
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return lambda p: (get(p) not in (None, "")) == (op == "HAS_PROPERTY")
    if op in ("IN", "NOT_IN"):
        if not isinstance(spec.get("values"), list):
            raise _Invalid(f"{op} needs values: [...]")
        wanted = {_coerce(name, v) for v in spec["values"]}
        return lambda p: (get(p) in wanted) == (op == "IN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(spec.get("value", "")).lower()
        return lambda p: _has_token(get(p), pattern) == (op == "CONTAINS_TOKEN")
    if op != "BETWEEN" and op not in _COMPARE:
        raise _Invalid(f"unknown operator {op!r}")
    value = _coerce(name, spec.get("value"))
    if op == "BETWEEN":
        high = _coerce(name, spec.get("highValue"))

        def between(person: Person) -> bool:
            actual: Any = get(person)
            return actual is not None and value <= actual <= high

        return between
    compare = _COMPARE[op]

    def test(person: Person) -> bool:
        actual = get(person)
        return op == "NEQ" if actual is None else compare(actual, value)

    return test


def _no_value(person: Person) -> None:
    """The value of a property contacts do not have."""
    return None


def _coerce(name: str, value: Any) -> int | str:
    """A filter value as the property's type: dates from epoch ms or ISO-8601, ids as numbers."""
    if value is None or isinstance(value, bool | dict | list):
        raise _Invalid(f"filter on {name} needs a value")
    text = str(value)
    if name in _DATES:
        if text.isdigit():
            return int(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _Invalid(f"{text!r} is neither epoch milliseconds nor an ISO-8601 date") from None
        return (when.replace(tzinfo=None) - (when.utcoffset() or timedelta()) - _EPOCH) // timedelta(milliseconds=1)
    if name == "hs_object_id":
        if not _is_id(text):
            raise _Invalid(f"hs_object_id {text!r} is not a number")
        return int(text)
    return text


def _has_token(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    text = str(value).lower()
    return any(fnmatchcase(token, pattern) for token in [text, *re.findall(r"\w+", text)])


def _sort(raw: Any) -> tuple[Callable[[Person], tuple[Any, ...]], bool]:
    """Only the first sort is honoured; without one, contacts come by id."""
    if not isinstance(raw, list) or any(not isinstance(s, dict) or "propertyName" not in s for s in raw):
        raise _Invalid("sorts must be a list of {propertyName, direction}")
    if not raw:
        return (lambda p: (p.seq,)), False
    direction = raw[0].get("direction", "ASCENDING")
    if direction not in ("ASCENDING", "DESCENDING"):
        raise _Invalid(f"sort direction {direction!r} is not ASCENDING or DESCENDING")
    get = _VALUES.get(str(raw[0]["propertyName"]), _no_value)
    return (lambda p: ((v := get(p)) is None, "" if v is None else v, p.seq)), direction == "DESCENDING"


def _search_names(raw: Any) -> list[str]:
    if raw is None or raw == []:
        return list(DEFAULT_PROPERTIES)
    if not isinstance(raw, list):
        raise _Invalid("properties must be a list of property names")
    return sorted({name for name in map(str, raw) if name in _VALUES})


# -- small parts -----------------------------------------------------------------------------------


def _object_id(seq: int) -> int:
    """An 11-digit id, ascending with creation order, not evenly spaced."""
    return _FIRST_ID + seq * _ID_STEP + (seq * 3) % _ID_STEP


def _iso(ms: int) -> str:
    """Epoch milliseconds as HubSpot writes them: `2024-04-30T09:12:44.117Z`."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def _shown(name: str, value: int | str | None) -> str | None:
    """A property value as the API shows it: always a string (or null)."""
    return _iso(value) if name in _DATES and isinstance(value, int) else None if value is None else str(value)


def _fits(window: collections.deque[float], now: float, seconds: float, limit: int) -> bool:
    """Count one request in a rolling window unless it is full."""
    while window and window[0] <= now - seconds:
        window.popleft()
    if len(window) >= limit:
        return False
    window.append(now)
    return True


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _names(params: QueryParams) -> list[str]:
    """Requested properties (comma lists, possibly repeated), unknown ones dropped; else the default set."""
    requested = [name.strip() for value in params.getlist("properties") for name in value.split(",")]
    return sorted({n for n in requested if n in _VALUES}) if requested else list(DEFAULT_PROPERTIES)


def _archived(params: QueryParams) -> bool:
    return params.get("archived", "false").lower() == "true"


def _page_size(raw: Any, cap: int, capped: bool) -> int:
    if raw is None:
        return 10
    if not _is_id(str(raw)) or int(raw) < 1:
        raise _Invalid(f"limit must be a positive integer, got {raw!r}")
    if int(raw) > cap and not capped:
        raise _Invalid(f"limit may not exceed {cap}, got {raw}")
    return min(int(raw), cap)


def _cursor(after: Any) -> int:
    if after is None:
        return 0
    if not _is_id(str(after)):
        raise _Invalid(f"after {after!r} is not a cursor this endpoint returned")
    return int(after)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid(f"expected a non-negative integer, got {value!r}")
    return value


def _selection(value: Any) -> None:
    if value is None or (isinstance(value, list) and all(isinstance(v, str | int) for v in value)):
        return
    _count(value)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Invalid(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Invalid("body must be a JSON object")
    return body


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), **extra}
    return json_response({**body, "category": category}, status)


def _rate_limited(policy: str, headers: dict[str, str]) -> Response:
    window = {"DAILY": "daily", "SECONDLY": "secondly"}.get(policy, "ten_secondly_rolling")
    body = {
        "status": "error",
        "message": f"You have reached your {window} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }
    return json_response(body, 429, headers)  # HubSpot sends the X-HubSpot-RateLimit-* headers on 429s too


async def _invalid_handler(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc), "VALIDATION_ERROR")


def main(argv: Sequence[str] | None = None) -> None:
    """`connectors.simulation.serve` plus HubSpot's own switches (rate limits, oversized pages, index lag)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--rate-limit", type=int, default=190)
    parser.add_argument("--rate-interval-ms", type=int, default=10_000)
    parser.add_argument("--daily-limit", type=int, default=1_000_000)
    parser.add_argument("--cap-oversized-limit", action="store_true", help="cap limit>100 instead of a 400")
    parser.add_argument("--index-lag-ms", type=int, default=0)
    parser.add_argument("--search-per-second", type=int, default=0)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    make = functools.partial(
        HubSpotSimulator,
        rate_limit=args.rate_limit,
        rate_interval_ms=args.rate_interval_ms,
        daily_limit=args.daily_limit,
        cap_oversized_limit=args.cap_oversized_limit,
        index_lag_ms=args.index_lag_ms,
        search_per_second=args.search_per_second,
    )
    description = "Serve a simulated HubSpot CRM v3 contacts API (also: --rate-limit, --rate-interval-ms, "
    description += "--daily-limit, --cap-oversized-limit, --index-lag-ms, --search-per-second)."
    serve(make, description, [*rest, "--token", args.token])


if __name__ == "__main__":
    main()
