"""`SalesforceSimulator`: SOQL with query locators, sObject rows, the replication resources and the org's limits."""

from __future__ import annotations

import collections
import re
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.salesforce.simulator.records import (
    FIELDS,
    FIRST_NUMBER,
    PREFIX,
    canonical,
    mailing_address,
    parse_time,
    person_fields,
    record_number,
    render,
    salesforce_id,
    second,
    sf_time,
    short_id,
    special_users,
)
from connectors.salesforce.simulator.soql import Query, Row, parse_soql, value_of
from connectors.salesforce.simulator.writes import ContactWrites, last_modified_by
from connectors.simulation import EPOCH_MS, Limit, OAuthQuirks, Person, Refusal, SimulatorBase, json_response

__all__ = ["DEFAULT_TOKEN", "MAX_BATCH", "MIN_BATCH", "VERSIONS", "SalesforceSimulator"]

DEFAULT_TOKEN = "00DRO0000000001!AQEAQFakeSessionTokenForTheSimulator"
MAX_BATCH, MIN_BATCH = 2000, 200
VERSIONS = (("Winter '24", "59.0"), ("Spring '24", "60.0"), ("Summer '24", "61.0"), ("Winter '25", "62.0"))
_DAY_MS = 86_400_000
_RECALC_MS = EPOCH_MS + 91 * _DAY_MS  # a formula recalculation touched every fifth seeded contact at this second
_VERSION = re.compile(r"^v\d{2}\.0$")
_CONCURRENT = "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
_NOT_FOUND = "The requested resource does not exist"
_NO_COLUMN = "No such column '{}' on entity '{}'."


class _Allocation:
    """The org's daily API request allocation, a rolling 24 h of every request received (`Sforce-Limit-Info`)."""

    name = "daily"

    def __init__(self, simulator: SalesforceSimulator) -> None:
        self._simulator = simulator
        self._received: collections.deque[float] = collections.deque()

    def count(self, now: float) -> None:
        self._received.append(now)

    def used(self) -> int:
        horizon = self._simulator.clock.monotonic() - 86_400
        while self._received and self._received[0] <= horizon:
            self._received.popleft()
        return len(self._received)

    def wait(self, units: int, now: float) -> float | None:
        if self.used() <= self._simulator.daily_limit:
            return None
        return self._received[0] + 86_400 - now  # the oldest request of the day leaves the window then

    def spend(self, units: int, now: float) -> None:
        """Nothing to do: `admit` counted the request as it arrived."""

    def clear(self) -> None:
        self._received.clear()


@dataclass(frozen=True)
class _Cursor:
    """A query locator: the rows the query matched, served batch by batch for two days."""

    query: Query
    rows: list[Row]
    resource: str  # query or queryAll
    opened_ms: int


class SalesforceSimulator(SimulatorBase):
    """Seeded contacts (and a user per person) of one org behind a Starlette app (`.app`).

    `daily_limit` is the org's rolling 24-hour allocation (403 `TotalRequests Limit exceeded.` past it);
    `max_batch` below 2000 answers fewer rows than asked, as Salesforce does for wide records. `delete`
    moves a contact to the Recycle Bin, `restore` undeletes it, `purge` empties it from the bin (and trims
    the delete log up to then).
    """

    connector = "salesforce"
    oauth_quirks = OAuthQuirks(
        authorize_path="/services/oauth2/authorize",
        token_path="/services/oauth2/token",
        revoke_path="/services/oauth2/revoke",
        expires_in=False,  # the session lasts the org's timeout; the answer does not say how long
        base_url_field="instance_url",
        client_credentials=True,
        jwt_bearer=True,
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
        replication_id_limit: int = 600_000,
        long_running_seconds: float = 20.0,
        concurrent_limit: int = 25,
        api_enabled: bool = True,
        unavailable: bool = False,
        hidden_sobjects: str = "",
        commit_lag_ms: int = 0,
        delete_log_cap: int = 0,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self.daily_limit, self.max_batch, self.replication_id_limit = daily_limit, max_batch, replication_id_limit
        self.long_running_seconds, self.concurrent_limit = long_running_seconds, concurrent_limit
        self.api_enabled, self.unavailable, self.commit_lag_ms = api_enabled, unavailable, commit_lag_ms
        self.hidden = {name.strip().lower() for name in hidden_sobjects.split(",") if name.strip()}
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._opened = self._running = 0
        self._log_start_ms = 0  # the delete log holds nothing older (a purge, a trim or expire_tokens)
        self.delete_log_cap, self._trimmed_ms = delete_log_cap, 0  # 0: the log is never trimmed
        super().__init__(records, seed, token=token)
        self._seeded = self.people.last_change
        self._specials = {row["Id"][:15]: row for row in special_users()}
        self._allocation = self.limited(_Allocation(self))

    # -- what SimulatorBase asks for ----------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return salesforce_id("Contact", FIRST_NUMBER + person.seq)

    def api_routes(self) -> list[BaseRoute]:
        data, writes = "/services/data/{version}", ContactWrites(self)
        return [
            Route("/services/data", self._versions, methods=["GET"]),
            Route("/services/data/", self._versions, methods=["GET"]),
            self.route(f"{data}/limits", self._limits, "limits"),
            self.route(f"{data}/query", self._query, "query"),
            self.route(f"{data}/queryAll", self._query, "queryAll"),
            self.route(data + "/query/{locator}", self._query_more, "query"),
            self.route(data + "/queryAll/{locator}", self._query_more, "queryAll"),
            self.route(data + "/sobjects/{sobject}/deleted/", self._replication, "deleted"),
            self.route(data + "/sobjects/{sobject}/updated/", self._replication, "updated"),
            self.route(data + "/sobjects/{sobject}/{record_id}", self._sobject, "get"),
            self.route(data + "/sobjects/{sobject}", writes.create, "write", ["POST"]),
            self.route(data + "/sobjects/{sobject}/", writes.create, "write", ["POST"]),
            self.route(data + "/sobjects/{sobject}/{record_id}", writes.update, "write", ["PATCH"]),
            self.route(data + "/sobjects/{sobject}/{record_id}", writes.delete, "write", ["DELETE"]),
        ]

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def authorize(self, request: Request, kind: str) -> Refusal | None:
        if self.unavailable:
            return Refusal(503, "SERVER_UNAVAILABLE", "Server unavailable; try again later.")
        if not self.api_enabled:
            return Refusal(403, "API_DISABLED_FOR_ORG", "The REST API is not enabled for this Organization.")
        return None

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        """Errors are a JSON array of `{"message", "errorCode"}` (INVALID_FIELD adds `fields`)."""
        return self.answer([{"message": refused.message, "errorCode": refused.code, **refused.details}], refused.status)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """Salesforce throttles with a 403 REQUEST_LIMIT_EXCEEDED and no Retry-After."""
        message = _CONCURRENT if limit == "concurrent" else "TotalRequests Limit exceeded."
        return self.refusal(request, Refusal(403, "REQUEST_LIMIT_EXCEEDED", message))

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        return [(self._allocation, 1)]

    def headers(self, request: Request | None) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self._allocation.used()}/{self.daily_limit}"}

    async def admit(self, request: Request, kind: str = "api") -> Response | None:
        """Every request counts toward the allocation; a long-running one (slowed past `long_running_seconds`)
        also holds one of `concurrent_limit` slots while it runs."""
        with self.lock:
            self._allocation.count(self.clock.monotonic())
            long_running = 0 < self.long_running_seconds <= self.faults.slow_seconds
            if long_running and self._running >= self.concurrent_limit:
                self.counts["requests"] += 1
                return self.throttled(request, "concurrent", 0)
            self._running += long_running
        try:
            return await super().admit(request, kind)
        finally:
            with self.lock:
                self._running -= long_running

    def inject(self, **faults: Any) -> None:
        """As SimulatorBase; `expire_tokens` purges the delete log now, so earlier windows are too old."""
        with self.lock:
            if faults.get("expire_tokens") and not self.faults.expire_tokens:
                self._log_start_ms = self.people.tick()
            super().inject(**faults)

    def purge(self, ids: int | Sequence[str]) -> list[str]:
        """Empty contacts from the Recycle Bin (or hard-delete live ones): gone from `queryAll`, and the
        delete log starts after them (`earliestDateAvailable`)."""
        with self.lock:
            purged = super().purge(ids)
            if purged:
                self._log_start_ms = self.people.tick()
            return purged

    def contact(self, raw_id: str) -> Person | None:
        """The person behind a Contact id (15 or 18 characters), purged or deleted ones included."""
        short = short_id(raw_id)
        if short is None or short[:3] != PREFIX["Contact"] or short[3:6] != "RO0":
            return None
        return self.people.get(record_number(short) - FIRST_NUMBER)

    # -- endpoints ----------------------------------------------------------------------------------

    async def _versions(self, request: Request) -> Response:
        """`GET /services/data/`: the API versions; it needs no session and counts against no limit."""
        versions = [{"label": label, "url": f"/services/data/v{n}", "version": n} for label, n in VERSIONS]
        return json_response(versions)

    async def _limits(self, request: Request) -> Response:
        _version(request)
        remaining = max(self.daily_limit - self._allocation.used(), 0)
        return self.answer({"DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining}})

    async def _query(self, request: Request) -> Response:
        resource = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        version, query = _version(request), parse_soql(request.query_params.get("q", ""))
        self._readable(query.sobject)
        with self.lock:
            rows = [r for r in self._rows(query.sobject, resource == "queryAll") if not query.where or query.where(r)]
            for field, descending, nulls_last in reversed(query.order):  # stable sorts, last key first
                rows.sort(key=_sort_key(field, nulls_last != descending), reverse=descending)
            end = None if query.limit is None else query.offset + query.limit
            cursor = _Cursor(query, rows[query.offset : end], resource, self.clock.now_ms())
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
        version, sobject = _version(request), self._readable(_sobject_name(request))
        names = request.query_params.get("fields")
        fields = tuple(canonical(sobject, n.strip()) for n in names.split(",")) if names else tuple(FIELDS[sobject])
        if bad := [f for f in fields if "." in f]:  # sObject rows take the object's own fields only
            raise Refusal(400, "INVALID_FIELD", _NO_COLUMN.format(bad[0], sobject), fields=[])
        with self.lock:
            row = self._row_by_id(sobject, request.path_params["record_id"])
            if row is None:
                raise Refusal(404, "NOT_FOUND", _NOT_FOUND)
            if row.get("IsDeleted"):
                raise Refusal(404, "ENTITY_IS_DELETED", "entity is deleted")
            return self.answer(render(row, sobject, fields, version))

    async def _replication(self, request: Request) -> Response:
        kind = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        sobject, days = self._readable(_sobject_name(request)), 15 if kind == "deleted" else 30
        start, end = _window(request)
        with self.lock:
            now = self.people.tick()
            oldest = now - now % _DAY_MS - days * _DAY_MS  # "no more than N days previous to the day"
            if start < oldest:
                raise Refusal(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
            covered = min(end, now)
            body = (
                self._updated(sobject, start, covered) if kind == "updated" else self._deleted(sobject, start, covered)
            )
            if len(body.get("ids") or body.get("deletedRecords") or []) > self.replication_id_limit:
                raise Refusal(400, "EXCEEDED_ID_LIMIT", "too many ids; use a smaller window")
            if kind == "deleted":
                body["earliestDateAvailable"] = sf_time(max(oldest, self._log_start_ms))
            return self.answer({**body, "latestDateCovered": sf_time(covered)})

    # -- rows, pages and answers --------------------------------------------------------------------

    def _updated(self, sobject: str, start: int, covered: int) -> dict[str, Any]:
        return {"ids": [r["Id"] for r in self._rows(sobject, False) if start <= r["SystemModstamp"] <= covered]}

    def _deleted(self, sobject: str, start: int, covered: int) -> dict[str, Any]:
        """Contacts deleted in the window (users deactivate), as far as the delete log still reaches."""
        self._trim()
        low = max(start, self._log_start_ms)
        gone = [p for p in self.people.all if p.deleted_ms and low <= p.deleted_ms <= covered and sobject == "Contact"]
        gone.sort(key=lambda p: p.deleted_ms or 0)
        return {
            "deletedRecords": [{"id": self.external_id(p), "deletedDate": sf_time(p.deleted_ms or 0)} for p in gone]
        }

    def _trim(self) -> None:
        """The background job: every 2 hours, a delete log longer than `delete_log_cap` loses its oldest entries."""
        now = self.clock.now_ms()
        if not self.delete_log_cap or now - self._trimmed_ms < 2 * 3_600_000:
            return
        self._trimmed_ms = now
        log = sorted(p.deleted_ms for p in self.people.all if p.deleted_ms and p.deleted_ms >= self._log_start_ms)
        if len(log) > self.delete_log_cap:
            self._log_start_ms = log[-self.delete_log_cap]

    def _rows(self, sobject: str, include_deleted: bool) -> list[Row]:
        if sobject == "Contact":
            chosen = (p for p in self.people.all if not p.purged and (include_deleted or not p.deleted))
            return [self._contact(p) for p in chosen]
        return [self._user(p) for p in self.people.all] + list(self._specials.values())

    def _contact(self, person: Person) -> Row:
        """A contact row; a change made since seeding carries a SystemModstamp `commit_lag_ms` older than the
        moment it became visible (a transaction's time is taken before it commits)."""
        recalculated = person.seq % 5 == 0 and person.change <= self._seeded
        lag = self.commit_lag_ms if person.change > self._seeded else 0
        stamp = second(max(person.modified_ms - lag, person.created_ms))
        account = None
        if person.seq % 10 != 9:  # every tenth contact has no account: `Account: null`
            number = zlib.crc32(person.company.encode()) % 1_000_000
            account = {"Id": salesforce_id("Account", number), "Name": person.company}
        return {
            **person_fields(person, self.external_id(person)),
            "AccountId": account and account["Id"],
            "Account": account,
            "IsDeleted": person.deleted,
            "MailingAddress": mailing_address(person),
            "LastModifiedById": last_modified_by(person),
            "SystemModstamp": max(stamp, _RECALC_MS) if recalculated else stamp,
        }

    def _user(self, person: Person) -> Row:
        return {
            **person_fields(person, salesforce_id("User", FIRST_NUMBER + person.seq)),
            "Username": f"{person.email}.acme",
            "CompanyName": person.company,
            "IsActive": not person.deleted,
            "UserType": "Standard",
        }

    def _row_by_id(self, sobject: str, raw: str) -> Row | None:
        short = short_id(raw)
        if short is None or short[:3] != PREFIX[sobject] or short[3:6] != "RO0":
            return None
        if sobject == "User" and short in self._specials:
            return self._specials[short]
        person = self.people.get(record_number(short) - FIRST_NUMBER)
        if person is None or (sobject == "Contact" and person.purged):
            return None
        return self._contact(person) if sobject == "Contact" else self._user(person)

    def _readable(self, sobject: str) -> str:
        if sobject.lower() in self.hidden:
            raise Refusal(403, "INSUFFICIENT_ACCESS", f"insufficient access rights on object {sobject}")
        return sobject

    def _page(
        self, request: Request, version: str, cursor: _Cursor, locator: str | None, offset: int, repeat: bool = False
    ) -> Response:
        chunk = cursor.rows[offset : offset + _batch_size(request, self.max_batch)]
        end = offset + len(chunk)
        body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not body["done"]:
            locator = locator or self._open(cursor)
            body["nextRecordsUrl"] = f"/services/data/{version}/{cursor.resource}/{locator}-{offset if repeat else end}"
        body["records"] = [render(row, cursor.query.sobject, cursor.query.fields, version) for row in chunk]
        return self.answer(body)

    def _open(self, cursor: _Cursor) -> str:
        self._opened += 1
        locator = salesforce_id("QueryLocator", self._opened)
        self._cursors[locator] = cursor
        while len(self._cursors) > 1000:  # bounded memory; Salesforce keeps them two days
            self._cursors.popitem(last=False)
        return locator


def _sort_key(field: str, nulls_last: bool) -> Any:
    """Nulls first ascending and last descending by default; NULLS FIRST / LAST says otherwise."""
    return lambda row: ((value_of(row, field) is None) == nulls_last, value_of(row, field))


def _sobject_name(request: Request) -> str:
    _version(request)
    name = next((s for s in FIELDS if s.lower() == request.path_params["sobject"].lower()), None)
    if name is None:
        raise Refusal(404, "NOT_FOUND", _NOT_FOUND)
    return name


def _version(request: Request) -> str:
    version: str = request.path_params["version"]
    if not _VERSION.match(version):
        raise Refusal(404, "NOT_FOUND", _NOT_FOUND)
    return version


def _batch_size(request: Request, cap: int) -> int:
    """`Sforce-Query-Options: batchSize=N`, held to 200..2000 (default 2000), then to what the server will send."""
    match = re.search(r"batchSize=(\d+)", request.headers.get("Sforce-Query-Options", ""))
    wanted = int(match[1]) if match else MAX_BATCH
    return min(max(wanted, MIN_BATCH), MAX_BATCH, cap)


def _window(request: Request) -> tuple[int, int]:
    """`start` and `end` in epoch ms, seconds ignored; start must precede end by a minute."""
    start, end = (parse_time(request.query_params.get(name, "")) for name in ("start", "end"))
    if start is None or end is None:
        raise Refusal(400, "INVALID_REPLICATION_DATE", "start and end must be ISO-8601 dateTimes with a zone")
    start, end = start - start % 60_000, end - end % 60_000
    if end - start < 60_000:
        raise Refusal(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    return start, end
