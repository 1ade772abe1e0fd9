"""An in-memory Salesforce REST API (Contact and User), for tests, demos and benchmarks.

It answers SOQL `query`/`queryAll` with server-side cursors (`nextRecordsUrl` ending `-<offset>`, `done`,
`totalSize`), `sobjects/<Object>/<Id>` and the replication resources `sobjects/<Object>/updated/` and
`deleted/`, as `api-specs/salesforce.md` describes them: error bodies are JSON arrays, the bearer token is
refused with `INVALID_SESSION_ID`, `Sforce-Query-Options: batchSize=` is held to 200–2000, ids are
18 characters with their case checksum, datetimes read `2024-05-01T12:00:03.000+0000`, throttling is a 403
`REQUEST_LIMIT_EXCEEDED` without Retry-After and every answer carries `Sforce-Limit-Info`. Deleted contacts
leave `query` (they stay in `queryAll` with `IsDeleted: true`); users are never deleted, only deactivated.

The SOQL understood: `SELECT f, Account.Name FROM Contact|User [WHERE f op literal AND ...]
[ORDER BY f [ASC|DESC], ...] [LIMIT n]`.

    python -m connectors.salesforce.simulator --port 8420 --records 1000
"""

from __future__ import annotations

import operator
import re
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from connectors.simulation import (
    EPOCH_MS,
    Limit,
    OAuthQuirks,
    Person,
    Refusal,
    SimulatorBase,
    serve,
    with_knobs,
)

__all__ = ["DEFAULT_TOKEN", "FIELDS", "MAX_BATCH", "MIN_BATCH", "SalesforceSimulator", "main", "make_simulator"]

DEFAULT_TOKEN = "00DRO0000000001!AQEAQFakeSessionTokenForTheSimulator"
MAX_BATCH, MIN_BATCH = 2000, 200
_COMMON = {
    "Id": "id", "FirstName": "string", "LastName": "string", "Name": "string", "Email": "string", "Phone": "string",
    "Title": "string", "CreatedDate": "datetime", "LastModifiedDate": "datetime", "SystemModstamp": "datetime",
}  # fmt: skip
FIELDS: dict[str, dict[str, str]] = {  # field -> type, per sObject
    "Contact": {**_COMMON, "AccountId": "id", "IsDeleted": "boolean"},
    "User": {**_COMMON, "Username": "string", "CompanyName": "string", "IsActive": "boolean", "UserType": "string"},
}
_RELATIONS = {"Contact": {"Account": {"Id": "id", "Name": "string"}}}
_PREFIX = {"Contact": "003", "User": "005", "Account": "001"}
_DAY_MS = 86_400_000
_RECALC_MS = EPOCH_MS + 91 * _DAY_MS  # a formula recalculation touched every fifth seeded contact at this second
_FIRST_NUMBER = 1_000_000  # record number of the first person; ids encode it in base 62
_SPECIAL_NUMBER = 62**8  # automated and guest users, beyond any person
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_VERSION = re.compile(r"^v\d{2}\.0$")
_CONCURRENT = "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
_NO_COLUMN = (
    "No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to append the "
    "'__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
)
_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_TERM = re.compile(r"^(?P<field>[\w.]+)\s*(?P<op>!=|<>|>=|<=|=|>|<)\s*(?P<value>.+)$", re.DOTALL)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<>": operator.ne,
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip


class _Allocation:
    """The org's daily API request allocation: every request received counts, as `Sforce-Limit-Info` says."""

    name = "daily"

    def __init__(self, simulator: SalesforceSimulator) -> None:
        self._simulator = simulator

    def wait(self, units: int, now: float) -> float | None:
        spent = self._simulator.counts["requests"] > self._simulator.daily_limit
        return 3600.0 if spent else None  # a rolling 24 h: some of it comes back within the hour

    def spend(self, units: int, now: float) -> None:
        """Nothing to do: `admit` counted the request."""

    def clear(self) -> None:
        """Nothing to do: `reset` clears the request counts."""


@dataclass(frozen=True)
class _Query:
    sobject: str
    fields: tuple[str, ...]
    where: tuple[tuple[str, str, Any], ...] = ()
    order: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    limit: int | None = None


@dataclass(frozen=True)
class _Cursor:
    """A query locator: the rows the query matched, served batch by batch for two days."""

    query: _Query
    rows: list[dict[str, Any]]
    resource: str  # query or queryAll
    opened_ms: int


class SalesforceSimulator(SimulatorBase):
    """Seeded contacts (and a user per person) of one org behind a Starlette app (`.app`).

    `daily_limit` is the org's allocation (403 `TotalRequests Limit exceeded.` past it); `max_batch` below
    2000 answers fewer rows than asked, as Salesforce does for wide records.
    """

    connector = "salesforce"
    oauth_quirks = OAuthQuirks(
        authorize_path="/services/oauth2/authorize",
        token_path="/services/oauth2/token",
        revoke_path="/services/oauth2/revoke",
        expires_in=False,  # the session lasts the org's timeout; the answer does not say how long
        base_url_field="instance_url",
        invalid_grant=lambda: (400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}),
    )

    fault_limit = "concurrent"
    server_error = (
        500,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support: 1948-27 (-1)",
    )
    malformed_body = b'{"totalSize":12,"done":true,"records":[{"attributes":{"type":"Cont'

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        daily_limit: int = 100_000,
        max_batch: int = MAX_BATCH,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self.daily_limit, self.max_batch = daily_limit, max_batch
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._opened = 0
        self._purged_ms: int | None = None
        super().__init__(records, seed, token=token)
        self._seeded = self.people.last_change
        self._specials = {row["Id"][:15]: row for row in _special_users()}
        self._allocation = _Allocation(self)

    # -- what SimulatorBase asks for ----------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return salesforce_id("Contact", _FIRST_NUMBER + person.seq)

    def api_routes(self) -> list[BaseRoute]:
        data = "/services/data/{version}"
        return [
            self.route(f"{data}/limits", self._limits, "limits"),
            self.route(f"{data}/query", self._query, "query"),
            self.route(f"{data}/queryAll", self._query, "queryAll"),
            self.route(data + "/query/{locator}", self._query_more, "query"),
            self.route(data + "/queryAll/{locator}", self._query_more, "queryAll"),
            self.route(data + "/sobjects/{sobject}/deleted/", self._replication, "deleted"),
            self.route(data + "/sobjects/{sobject}/updated/", self._replication, "updated"),
            self.route(data + "/sobjects/{sobject}/{record_id}", self._sobject, "get"),
        ]

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        """Errors are a JSON array of `{"message", "errorCode"}`."""
        return self._json([{"message": refused.message, "errorCode": refused.code}], refused.status)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """Salesforce throttles with a 403 REQUEST_LIMIT_EXCEEDED and no Retry-After."""
        message = _CONCURRENT if limit == "concurrent" else "TotalRequests Limit exceeded."
        return self._error(403, "REQUEST_LIMIT_EXCEEDED", message)

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        return [(self._allocation, 1)]

    def headers(self, request: Request | None) -> dict[str, str]:
        return self._usage()

    def inject(self, **faults: Any) -> None:
        """As SimulatorBase; `expire_tokens` purges the delete log now, so earlier windows are too old."""
        with self.lock:
            if faults.get("expire_tokens") and not self.faults.expire_tokens:
                self._purged_ms = self.people.tick()
            super().inject(**faults)

    # -- endpoints ----------------------------------------------------------------------------------

    async def _limits(self, request: Request) -> Response:
        _version(request)
        remaining = max(self.daily_limit - self.counts["requests"], 0)
        return self._json({"DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining}})

    async def _query(self, request: Request) -> Response:
        resource = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        version, query = _version(request), parse_soql(request.query_params.get("q", ""))
        with self.lock:
            rows = [r for r in self._rows(query.sobject, resource == "queryAll") if _matches(r, query.where)]
            for field, descending in reversed(query.order):  # stable sorts, last key first
                rows.sort(key=_sort_key(field), reverse=descending)
            cursor = _Cursor(query, rows[: query.limit], resource, self.clock.now_ms())
            return self._page(request, version, cursor, None, 0)

    async def _query_more(self, request: Request) -> Response:
        version = _version(request)
        locator, _, offset = request.path_params["locator"].rpartition("-")
        with self.lock:
            cursor = self._cursors.get(locator)
            stale = cursor is None or self.clock.now_ms() - cursor.opened_ms > 2 * _DAY_MS
            if stale or cursor is None or not offset.isdigit() or int(offset) > len(cursor.rows):
                raise Refusal(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self._page(request, version, cursor, locator, int(offset), repeat=self.take_repeat())

    async def _sobject(self, request: Request) -> Response:
        version, sobject = _version(request), _sobject_name(request)
        names = request.query_params.get("fields")
        fields = tuple(_canonical(sobject, n.strip()) for n in names.split(",")) if names else tuple(FIELDS[sobject])
        if bad := [f for f in fields if "." in f]:  # sObject rows take the object's own fields only
            raise Refusal(400, "INVALID_FIELD", _NO_COLUMN.format(bad[0], sobject))
        with self.lock:
            row = self._row_by_id(sobject, request.path_params["record_id"])
            if row is None:
                raise Refusal(404, "NOT_FOUND", "The requested resource does not exist")
            if row.get("IsDeleted"):
                raise Refusal(404, "ENTITY_IS_DELETED", "entity is deleted")
            return self._json(_render(row, sobject, fields, version))

    async def _replication(self, request: Request) -> Response:
        kind = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        sobject, days = _sobject_name(request), 15 if kind == "deleted" else 30
        start, end = _window(request)
        with self.lock:
            now = self.people.tick()
            oldest = now - now % _DAY_MS - days * _DAY_MS  # "no more than N days previous to the day"
            if start < oldest:
                raise Refusal(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
            covered = min(end, now)
            if kind == "updated":
                ids = [r["Id"] for r in self._rows(sobject, False) if start <= r["SystemModstamp"] <= covered]
                return self._json({"ids": ids, "latestDateCovered": _sf_time(covered)})
            gone = [p for p in self.people.all if p.deleted_ms and start <= p.deleted_ms <= covered]
            gone = sorted(gone, key=lambda p: p.deleted_ms or 0) if sobject == "Contact" else []  # users deactivate
            deleted = [{"id": self.external_id(p), "deletedDate": _sf_time(p.deleted_ms or 0)} for p in gone]
            purged = self._purged_ms if self.faults.expire_tokens and self._purged_ms else 0
            body = {"deletedRecords": deleted, "earliestDateAvailable": _sf_time(max(oldest, purged))}
            return self._json({**body, "latestDateCovered": _sf_time(covered)})

    # -- rows, pages and answers --------------------------------------------------------------------

    def _rows(self, sobject: str, include_deleted: bool) -> list[dict[str, Any]]:
        if sobject == "Contact":
            return [self._contact(p) for p in self.people.all if include_deleted or not p.deleted]
        return [self._user(p) for p in self.people.all] + list(self._specials.values())

    def _contact(self, person: Person) -> dict[str, Any]:
        stamp = _second(person.modified_ms)
        recalculated = person.seq % 5 == 0 and person.change <= self._seeded
        account = None
        if person.seq % 10 != 9:  # every tenth contact has no account: `Account: null`
            number = zlib.crc32(person.company.encode()) % 1_000_000
            account = {"Id": salesforce_id("Account", number), "Name": person.company}
        return {
            **_person_fields(person, self.external_id(person)),
            "AccountId": account and account["Id"],
            "Account": account,
            "IsDeleted": person.deleted,
            "SystemModstamp": max(stamp, _RECALC_MS) if recalculated else stamp,
        }

    def _user(self, person: Person) -> dict[str, Any]:
        return {
            **_person_fields(person, salesforce_id("User", _FIRST_NUMBER + person.seq)),
            "Username": f"{person.email}.acme",
            "CompanyName": person.company,
            "IsActive": not person.deleted,
            "UserType": "Standard",
        }

    def _row_by_id(self, sobject: str, raw: str) -> dict[str, Any] | None:
        short = _short_id(raw)
        if short is None or short[:3] != _PREFIX[sobject] or short[3:6] != "RO0":
            return None
        if sobject == "User" and short in self._specials:
            return self._specials[short]
        number = sum(_BASE62.index(c) * 62**i for i, c in enumerate(reversed(short[6:])))
        person = self.people.get(number - _FIRST_NUMBER)
        if person is None:
            return None
        return self._contact(person) if sobject == "Contact" else self._user(person)

    def _page(
        self, request: Request, version: str, cursor: _Cursor, locator: str | None, offset: int, repeat: bool = False
    ) -> Response:
        chunk = cursor.rows[offset : offset + _batch_size(request, self.max_batch)]
        end = offset + len(chunk)
        body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not body["done"]:
            locator = locator or self._open(cursor)
            body["nextRecordsUrl"] = f"/services/data/{version}/{cursor.resource}/{locator}-{offset if repeat else end}"
        body["records"] = [_render(row, cursor.query.sobject, cursor.query.fields, version) for row in chunk]
        return self._json(body)

    def _open(self, cursor: _Cursor) -> str:
        self._opened += 1
        locator = salesforce_id("QueryLocator", self._opened)
        self._cursors[locator] = cursor
        while len(self._cursors) > 1000:  # bounded memory; Salesforce keeps them two days
            self._cursors.popitem(last=False)
        return locator

    def _usage(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.counts['requests']}/{self.daily_limit}"}

    def _json(self, body: Any, status: int = 200) -> Response:
        return self.answer(body, status)

    def _error(self, status: int, code: str, message: str) -> Response:
        return self._json([{"message": message, "errorCode": code}], status)


# -- SOQL ------------------------------------------------------------------------------------------


def parse_soql(text: str) -> _Query:
    """The parts of a query this simulator answers; anything else is refused as Salesforce would."""
    match = _SOQL.match(text)
    if match is None:
        raise Refusal(400, "MALFORMED_QUERY", f"unexpected token: '{(text.split() or [''])[0]}'")
    sobject = next((name for name in FIELDS if name.lower() == match["object"].lower()), None)
    if sobject is None:
        message = f"sObject type '{match['object']}' is not supported."
        raise Refusal(400, "INVALID_TYPE", message)
    fields = tuple(_canonical(sobject, name.strip()) for name in match["fields"].split(","))
    if len(set(fields)) < len(fields):
        raise Refusal(400, "MALFORMED_QUERY", "duplicate field selected")
    terms = re.split(r"\s+AND\s+", match["where"], flags=re.IGNORECASE) if match["where"] else []
    order = [part.split() for part in match["order"].split(",")] if match["order"] else []
    return _Query(
        sobject,
        fields,
        tuple(_term(sobject, term) for term in terms),
        tuple((_canonical(sobject, o[0]), len(o) > 1 and o[1].upper() == "DESC") for o in order if o),
        int(match["limit"]) if match["limit"] else None,
    )


def _canonical(sobject: str, name: str) -> str:
    """A field name as Salesforce spells it (SOQL is case-insensitive), or INVALID_FIELD."""
    head, _, tail = name.partition(".")
    if not tail:
        found = next((f for f in FIELDS[sobject] if f.lower() == head.lower()), None)
    else:
        relation = next((r for r in _RELATIONS.get(sobject, {}) if r.lower() == head.lower()), None)
        if relation is None:
            raise Refusal(400, "INVALID_FIELD", f"Didn't understand relationship '{head}' in field path.")
        field = next((f for f in _RELATIONS[sobject][relation] if f.lower() == tail.lower()), None)
        found = f"{relation}.{field}" if field else None
    if found is None:
        raise Refusal(400, "INVALID_FIELD", _NO_COLUMN.format(name, sobject))
    return found


def _term(sobject: str, text: str) -> tuple[str, str, Any]:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    match = _TERM.match(text)
    if match is None or re.search(r"\s(OR|NOT)\s", text, re.IGNORECASE):
        raise Refusal(400, "MALFORMED_QUERY", f"unexpected token: '{text}' (the simulator takes AND-ed comparisons)")
    field = _canonical(sobject, match["field"])
    head, _, tail = field.partition(".")
    kind = _RELATIONS[sobject][head][tail] if tail else FIELDS[sobject][field]
    return field, match["op"], _literal(field, kind, match["value"].strip())


def _literal(field: str, kind: str, raw: str) -> Any:
    quoted = len(raw) >= 2 and raw[0] == raw[-1] == "'"
    if raw.lower() == "null":
        return None
    if kind == "datetime":
        if quoted:  # SOQL datetime literals are unquoted
            message = f"value of filter criterion for field '{field}' must be of type dateTime and should not be "
            raise Refusal(400, "INVALID_FIELD", message + "enclosed in quotes")
        if (moment := _parse_time(raw)) is None:
            raise Refusal(400, "INVALID_FIELD", f"value of filter criterion for field '{field}' is not a dateTime")
        return moment
    if kind == "boolean" and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if not quoted or kind == "boolean":
        raise Refusal(400, "MALFORMED_QUERY", f"unexpected token: '{raw}'")
    return raw[1:-1].replace("\\'", "'")


def _matches(row: dict[str, Any], where: tuple[tuple[str, str, Any], ...]) -> bool:
    for field, op, wanted in where:
        actual = _value(row, field)
        if actual is None or wanted is None:
            if (op == "=") != (actual is wanted) or op not in ("=", "!=", "<>"):
                return False
        elif not _OPS[op](actual, wanted):
            return False
    return True


def _value(row: dict[str, Any], field: str) -> Any:
    head, _, tail = field.partition(".")
    return (row[head] or {}).get(tail) if tail else row[field]


def _sort_key(field: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    """Nulls first ascending and last descending, as SOQL's default."""
    return lambda row: (_value(row, field) is not None, _value(row, field))


# -- records, ids and times -------------------------------------------------------------------------


def _person_fields(person: Person, record_id: str) -> dict[str, Any]:
    return {
        "Id": record_id,
        "FirstName": person.first,
        "LastName": person.last,
        "Name": person.full_name,
        "Email": person.email,
        "Phone": person.phone,
        "Title": person.title,
        "CreatedDate": _second(person.created_ms),
        "LastModifiedDate": _second(person.modified_ms),
        "SystemModstamp": _second(person.modified_ms),
    }


def _special_users() -> list[dict[str, Any]]:
    """Users that are not people, left out by `UserType = 'Standard'`."""
    return [
        {
            "Id": salesforce_id("User", _SPECIAL_NUMBER + i),
            **dict.fromkeys(("FirstName", "Phone", "Title", "CompanyName")),
            "LastName": name,
            "Name": name,
            "Email": f"noreply{i}@example.org",
            "Username": f"{kind.lower()}{i}@00dro0000000001.example",
            "IsActive": True,
            "UserType": kind,
            **dict.fromkeys(("CreatedDate", "LastModifiedDate", "SystemModstamp"), EPOCH_MS),
        }
        for i, (name, kind) in enumerate((("Automated Process", "AutomatedProcess"), ("Site Guest User", "Guest")))
    ]


def _render(row: dict[str, Any], sobject: str, fields: tuple[str, ...], version: str) -> dict[str, Any]:
    """A record as the API writes it: `attributes` first, relationship fields nested, nulls kept."""
    record: dict[str, Any] = {"attributes": _attributes(sobject, row["Id"], version)}
    for field in fields:
        head, _, tail = field.partition(".")
        if not tail:
            record[field] = _sf_time(row[field]) if FIELDS[sobject][field] == "datetime" else row[field]
        elif row[head] is None:
            record[head] = None
        else:
            nested = record.setdefault(head, {"attributes": _attributes(head, row[head]["Id"], version)})
            nested[tail] = row[head][tail]
    return record


def _attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{record_id}"}


def salesforce_id(sobject: str, number: int) -> str:
    """An 18-character id: key prefix, pod `RO`, `0`, nine base-62 digits, then the 3-letter case checksum."""
    digits = ""
    for _ in range(9):
        number, digit = divmod(number, 62)
        digits = _BASE62[digit] + digits
    short = f"{_PREFIX.get(sobject, '01g')}RO0{digits}"
    return short + _checksum(short)


def _checksum(short: str) -> str:
    """Per 5-character chunk, a bit per uppercase letter, as an index into A..Z0..5."""
    return "".join(
        _CHECKSUM[sum(1 << i for i, c in enumerate(short[k : k + 5]) if "A" <= c <= "Z")] for k in (0, 5, 10)
    )


def _short_id(raw: str) -> str | None:
    """The case-sensitive 15-character id from a 15-character one, or an 18-character one in any case."""
    if len(raw) == 15:
        return raw if all(c in _BASE62 for c in raw) else None
    if len(raw) != 18 or any(c.upper() not in _CHECKSUM for c in raw[15:]) or any(c not in _BASE62 for c in raw):
        return None
    chars = []
    for k in range(3):
        mask = _CHECKSUM.index(raw[15 + k].upper())
        chars += [c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(raw[5 * k : 5 * k + 5])]
    short = "".join(chars)
    return short if _checksum(short) == raw[15:].upper() else None


def _sobject_name(request: Request) -> str:
    _version(request)
    name = next((s for s in FIELDS if s.lower() == request.path_params["sobject"].lower()), None)
    if name is None:
        raise Refusal(404, "NOT_FOUND", "The requested resource does not exist")
    return name


def _version(request: Request) -> str:
    version: str = request.path_params["version"]
    if not _VERSION.match(version):
        raise Refusal(404, "NOT_FOUND", "The requested resource does not exist")
    return version


def _batch_size(request: Request, cap: int) -> int:
    """`Sforce-Query-Options: batchSize=N`, held to 200..2000 (default 2000), then to what the server will send."""
    match = re.search(r"batchSize=(\d+)", request.headers.get("Sforce-Query-Options", ""))
    wanted = int(match[1]) if match else MAX_BATCH
    return min(max(wanted, MIN_BATCH), MAX_BATCH, cap)


def _window(request: Request) -> tuple[int, int]:
    """`start` and `end` in epoch ms, seconds ignored; start must precede end by a minute."""
    start, end = (_parse_time(request.query_params.get(name, "")) for name in ("start", "end"))
    if start is None or end is None:
        raise Refusal(400, "INVALID_REPLICATION_DATE", "start and end must be ISO-8601 dateTimes with a zone")
    start, end = start - start % 60_000, end - end % 60_000
    if end - start < 60_000:
        raise Refusal(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    return start, end


def _parse_time(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment is not None and moment.tzinfo is not None else None


def _second(ms: int) -> int:
    return ms - ms % 1000


def _sf_time(ms: int) -> str:
    """`2024-05-01T12:00:03.000+0000`: UTC, milliseconds always zero."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(ms // 1000))


make_simulator = SalesforceSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(SalesforceSimulator, argv, "Serve a simulated Salesforce REST API (Contact and User)."))


if __name__ == "__main__":
    main()
