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

import bisect
import operator
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from connectors.simulation import (
    Limit,
    OAuthQuirks,
    Person,
    Refusal,
    SimulatorBase,
    json_response,
    serve,
    with_knobs,
)

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

DEFAULT_TOKEN = "pat-na1-demo-token"
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
MAX_LIMIT = 100
MAX_SEARCH_LIMIT = 200
SEARCH_CAP = 10_000  # results one search query can page through
_MAX_GROUPS, _MAX_GROUP_FILTERS, _MAX_FILTERS = 5, 10, 25  # the Aug 2024 changelog's limits
_NOT_FOUND = "Object not found.  objectId are usually numeric."
_BAD_CREDENTIALS = "Authentication credentials not found or invalid. Send a private app or OAuth 2.0 token."
_NO_API_KEYS = "API keys (hapikey) were retired; send a private app token as a Bearer token."
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
    counters = ("list_requests", "get_requests")
    fault_limit = "TEN_SECONDLY_ROLLING"
    server_error = (500, "INTERNAL_ERROR", "internal error")
    malformed_body = b'{"results": [{"id": "'  # what a proxy cutting the connection mid-body leaves behind

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        rate_limit: int = 190,
        rate_interval_ms: int = 10_000,
        daily_limit: int = 1_000_000,
        cap_oversized_limit: bool = False,
        index_lag_ms: int = 0,
        search_per_second: int = 0,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        super().__init__(records, seed, token=token)
        self.rate_limit, self.rate_interval_ms, self.daily_limit = rate_limit, rate_interval_ms, daily_limit
        self.cap_oversized_limit, self.index_lag_ms = cap_oversized_limit, index_lag_ms
        self.search_per_second = search_per_second
        self.window = self.rolling_window("TEN_SECONDLY_ROLLING", rate_interval_ms / 1000, rate_limit)
        self.search_window = self.rolling_window("SECONDLY", 1.0, search_per_second or None)
        self.daily = self.daily_budget("DAILY", daily_limit)

    # -- SimulatorBase -----------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return str(_object_id(person.seq))

    def api_routes(self) -> list[BaseRoute]:
        return [
            self.route("/crm/v3/objects/contacts", self._list_endpoint, "list_requests"),
            self.route("/crm/v3/objects/contacts/search", self._search_endpoint, "search_requests", ["POST"]),
            self.route("/crm/v3/objects/contacts/{contact_id}", self._get_endpoint, "get_requests"),
        ]

    def authenticate(self, request: Request) -> Response | None:
        if "hapikey" in request.query_params:
            return self.refusal(request, Refusal(401, "INVALID_AUTHENTICATION", _NO_API_KEYS))
        return super().authenticate(request)

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "INVALID_AUTHENTICATION", _BAD_CREDENTIALS)

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        return _error(refused.status, refused.message, refused.code, refused.headers, **refused.details)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """A 429 keyed by `policyName`, without Retry-After; only the non-search limits carry rate headers."""
        searching = request is not None and request.url.path.endswith("/search")
        bare = limit == "SECONDLY" or (limit == "DAILY" and searching)
        return _rate_limited(limit, {} if bare else self.headers(request))

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        if kind == "search_requests":
            return [(self.daily, 1), (self.search_window, 1)]
        return [(self.daily, 1), (self.window, 1)]

    def headers(self, request: Request | None) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily.remaining()),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.rate_interval_ms),
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(self.window.remaining()),
        }

    # -- the Python control API --------------------------------------------------------------------

    def create(self, n: int) -> list[str]:
        """Add `n` live contacts created now; return their ids (larger than every earlier one)."""
        return super().create(n)

    def delete(self, ids: int | Sequence[str]) -> list[str]:
        """Archive the given live ids (or `ids` random ones) like `DELETE .../contacts/{id}` does."""
        return super().delete(ids)

    def ids(self, *, archived: bool = False) -> list[str]:
        """All live (or archived) ids in ascending order."""
        with self.lock:
            return [str(oid) for oid in self._ids(archived)]

    def stats(self) -> dict[str, int]:
        """Requests received (errors included) by kind, and live/archived record counts."""
        with self.lock:
            return {**self.counts, "records": len(self._ids(False)), "archived": len(self._ids(True))}

    def reset(self) -> None:
        """Clear faults, request counters and rate-limit usage; the data stays."""
        with self.lock:
            super().reset()
            for limit in (self.window, self.search_window, self.daily):
                limit.clear()

    # -- CRM endpoints -----------------------------------------------------------------------------

    async def _list_endpoint(self, request: Request) -> Response:
        params = request.query_params
        limit, names = _page_size(params.get("limit"), MAX_LIMIT, self.cap_oversized_limit), _names(params)
        after = params.get("after")
        with self.lock:
            ids = self._ids(_archived(params))
            start = bisect.bisect_left(ids, _cursor(after))
            page = ids[start : start + limit]
            body: dict[str, Any] = {"results": [self._render(self._person(str(oid)), names) for oid in page]}
            if start + limit < len(ids):
                nxt = after if after is not None and self.take_repeat() else str(ids[start + limit])
                link = str(request.url.include_query_params(after=nxt))
                body["paging"] = {"next": {"after": nxt, "link": link}}
            return self.answer(body)

    async def _get_endpoint(self, request: Request) -> Response:
        raw_id: str = request.path_params["contact_id"]
        params = request.query_params
        with self.lock:
            person = self._resolve(raw_id, params.get("idProperty"))
            if person is None or person.deleted != _archived(params):
                raise Refusal(404, "OBJECT_NOT_FOUND", _NOT_FOUND, context={"id": [raw_id]})
            return self.answer(self._render(person, _names(params)))

    async def _search_endpoint(self, request: Request) -> Response:
        """Live contacts matching the filter groups, sorted by one property; no rate-limit headers."""
        query = _json_object(await request.body())
        groups, names = _filter_groups(query.get("filterGroups", [])), _search_names(query.get("properties"))
        sort_key, descending = _sort(query.get("sorts", []))
        limit = _page_size(query.get("limit"), MAX_SEARCH_LIMIT, self.cap_oversized_limit)
        after = _cursor(query.get("after"))
        if after + limit > SEARCH_CAP:
            raise _invalid(f"a search can page through at most {SEARCH_CAP} results; narrow the filters instead")
        with self.lock:
            visible = self.clock.time() * 1000 - self.index_lag_ms
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

    # -- helpers -----------------------------------------------------------------------------------

    def _ids(self, archived: bool) -> list[int]:
        """Live (or archived) contact ids, ascending; ids ascend with creation order."""
        return self.people.view(
            ("ids", archived), lambda: [_object_id(p.seq) for p in self.people.all if p.deleted == archived]
        )

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
            by_email = self.people.view("by_email", lambda: {p.email: p for p in self.people.all})
            return by_email.get(raw_id.lower())
        if id_property not in (None, "hs_object_id"):
            raise _invalid(f"idProperty {id_property!r} is not a unique property of contacts")
        return self.find(raw_id)


make_simulator = HubSpotSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


# -- search ----------------------------------------------------------------------------------------


def _filter_groups(raw: Any) -> list[list[Callable[[Person], bool]]]:
    """Groups are ORed, the filters inside one group ANDed."""
    if not isinstance(raw, list) or any(not isinstance(g, dict) or not isinstance(g.get("filters"), list) for g in raw):
        raise _invalid("filterGroups must be a list of {filters: [...]}")
    sizes = [len(group["filters"]) for group in raw]
    if len(raw) > _MAX_GROUPS or max(sizes, default=0) > _MAX_GROUP_FILTERS or sum(sizes) > _MAX_FILTERS:
        raise _invalid(f"at most {_MAX_GROUPS} filter groups of {_MAX_GROUP_FILTERS}, {_MAX_FILTERS} filters in all")
    return [[_predicate(f) for f in group["filters"]] for group in raw]


def _predicate(spec: Any) -> Callable[[Person], bool]:
    if not isinstance(spec, dict) or not isinstance(spec.get("propertyName"), str):
        raise _invalid("each filter needs a propertyName")
    name, op = spec["propertyName"], spec.get("operator")
    get = _VALUES.get(name, _no_value)
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return lambda p: (get(p) not in (None, "")) == (op == "HAS_PROPERTY")
    if op in ("IN", "NOT_IN"):
        if not isinstance(spec.get("values"), list):
            raise _invalid(f"{op} needs values: [...]")
        wanted = {_coerce(name, v) for v in spec["values"]}
        return lambda p: (get(p) in wanted) == (op == "IN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(spec.get("value", "")).lower()
        return lambda p: _has_token(get(p), pattern) == (op == "CONTAINS_TOKEN")
    if op != "BETWEEN" and op not in _COMPARE:
        raise _invalid(f"unknown operator {op!r}")
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
        raise _invalid(f"filter on {name} needs a value")
    text = str(value)
    if name in _DATES:
        if text.isdigit():
            return int(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(f"{text!r} is neither epoch milliseconds nor an ISO-8601 date") from None
        return (when.replace(tzinfo=None) - (when.utcoffset() or timedelta()) - _EPOCH) // timedelta(milliseconds=1)
    if name == "hs_object_id":
        if not _is_id(text):
            raise _invalid(f"hs_object_id {text!r} is not a number")
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
        raise _invalid("sorts must be a list of {propertyName, direction}")
    if not raw:
        return (lambda p: (p.seq,)), False
    direction = raw[0].get("direction", "ASCENDING")
    if direction not in ("ASCENDING", "DESCENDING"):
        raise _invalid(f"sort direction {direction!r} is not ASCENDING or DESCENDING")
    get = _VALUES.get(str(raw[0]["propertyName"]), _no_value)
    return (lambda p: ((v := get(p)) is None, "" if v is None else v, p.seq)), direction == "DESCENDING"


def _search_names(raw: Any) -> list[str]:
    if raw is None or raw == []:
        return list(DEFAULT_PROPERTIES)
    if not isinstance(raw, list):
        raise _invalid("properties must be a list of property names")
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
        raise _invalid(f"limit must be a positive integer, got {raw!r}")
    if int(raw) > cap and not capped:
        raise _invalid(f"limit may not exceed {cap}, got {raw}")
    return min(int(raw), cap)


def _cursor(after: Any) -> int:
    if after is None:
        return 0
    if not _is_id(str(after)):
        raise _invalid(f"after {after!r} is not a cursor this endpoint returned")
    return int(after)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object")
    return body


def _invalid(message: str) -> Refusal:
    """A request the real API would answer with 400 VALIDATION_ERROR."""
    return Refusal(400, "VALIDATION_ERROR", message)


def _error(status: int, message: str, category: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), **extra}
    return json_response({**body, "category": category}, status, headers)


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


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(HubSpotSimulator, argv, "Serve a simulated HubSpot CRM v3 contacts API."))


if __name__ == "__main__":
    main()
