"""`GooglePeopleSimulator`: the user's contacts (`people.connections.list`, `people.get`, `people:batchGet`)
with sync tokens, quotas and the API's error model."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.google_people.simulator import render
from connectors.google_people.simulator.render import resource_name
from connectors.google_people.simulator.writes import ContactWrites
from connectors.simulation import (
    Limit,
    OAuthQuirks,
    Person,
    Refusal,
    SimulatorBase,
    decode_token,
    encode_token,
)

__all__ = ["DEFAULT_TOKEN", "MAX_BATCH", "MAX_PAGE_SIZE", "PERSON_FIELDS", "GooglePeopleSimulator"]

DEFAULT_TOKEN = "ya29.a0AfB_simulated-access-token"
MAX_PAGE_SIZE = 1000
_REVOKED = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
DEFAULT_PAGE_SIZE = 100
MAX_BATCH = 200
SYNC_TOKEN_TTL_SECONDS = 7 * 86_400
PERSON_FIELDS = frozenset(
    "addresses ageRanges biographies birthdays calendarUrls clientData coverPhotos emailAddresses events "
    "externalIds genders imClients interests locales locations memberships metadata miscKeywords names "
    "nicknames occupations organizations phoneNumbers photos relations sipAddresses skills urls userDefined".split()
)
SOURCES = frozenset({"READ_SOURCE_TYPE_CONTACT", "READ_SOURCE_TYPE_PROFILE"})
_SORT_KEYS: dict[str, Callable[[Person], tuple[Any, ...]]] = {
    "LAST_MODIFIED_ASCENDING": lambda p: (p.modified_ms, p.seq),
    "LAST_MODIFIED_DESCENDING": lambda p: (-p.modified_ms, -p.seq),
    "FIRST_NAME_ASCENDING": lambda p: (p.first, p.last, p.seq),
    "LAST_NAME_ASCENDING": lambda p: (p.last, p.first, p.seq),
}
_NO_FIELDS = (
    "personFields mask is required. Please specify one or more valid paths. "
    "Valid paths are documented at https://developers.google.com/people/api/rest/v1/people/get."
)
_EXPIRED = "Sync token is expired. Clear local cache and retry call without the sync token."
_MISMATCH = "Parameters must match the request that generated the page token or sync token."
_AUTH_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_READ_QUOTA = "Critical read requests (Contact and Profile Reads)"
_FULL_SYNC_QUOTA = "Full sync requests"
_PROJECT_QUOTA = "Read requests per minute (project)"
_WRITE_QUOTA = "Critical write requests (Contact and Profile Writes)"
_SCOPE = "Request had insufficient authentication scopes."
_MULTIPLIER, _OFFSET = 0x9E3779B97F4A7C15, 7_142_462_727_258_425_368  # odd: seq -> number is a bijection


class GooglePeopleSimulator(SimulatorBase):
    """Seeded contacts of one Google account behind a Starlette app (`.app`); same seed, same contacts.

    Resource names are `people/c<digits>` from a bijection of `Person.seq`; the CONTACT source id is the
    same number in hex, as in real responses. Options: `read_quota_per_minute` and
    `full_sync_quota_per_minute` (None: unlimited), `expired_status` (400, or 410 as older samples
    expect), `sync_delay_seconds` (how long a change takes to reach sync responses),
    `omit_empty_connections`, `reject_encoded_slash`, `clamp_page_size` (cap pageSize over 1000 instead
    of a 400), `retry_info` (429s carry a google.rpc.RetryInfo with `faults.retry_after`),
    `service_disabled` (403 SERVICE_DISABLED) and `sync_token_ttl_seconds`.
    """

    connector = "google_people"
    oauth_quirks = OAuthQuirks(
        authorize_path="/o/oauth2/v2/auth",
        token_path="/token",
        revoke_path="/revoke",
        refresh_in_refresh_answer=False,
        offline_param=("access_type", "offline"),
        invalid_grant=lambda: (400, _REVOKED),
    )

    fault_limit = _READ_QUOTA
    required_scopes = frozenset(
        {"https://www.googleapis.com/auth/contacts.readonly", "https://www.googleapis.com/auth/contacts"}
    )
    server_error = (500, "INTERNAL", "Internal error encountered.")
    malformed_body = b'{"connections": [{"resourceName": "people/c'  # a body cut off mid-way by a proxy
    media_type = "application/json; charset=UTF-8"

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        read_quota_per_minute: int | None = 90,
        full_sync_quota_per_minute: int | None = 10,
        expired_status: int = 400,
        sync_delay_seconds: float = 0.0,
        omit_empty_connections: bool = True,
        reject_encoded_slash: bool = True,
        clamp_page_size: bool = False,
        retry_info: bool = False,
        service_disabled: bool = False,
        sync_token_ttl_seconds: float = SYNC_TOKEN_TTL_SECONDS,
        project_read_quota_per_minute: int | None = None,
        write_quota_per_minute: int | None = 90,
        legacy_etag_412: bool = False,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        super().__init__(records, seed, token=token)
        self.read_quota_per_minute, self.full_sync_quota_per_minute = read_quota_per_minute, full_sync_quota_per_minute
        self.expired_status, self.sync_delay_seconds = expired_status, sync_delay_seconds
        self.omit_empty_connections, self.reject_encoded_slash = omit_empty_connections, reject_encoded_slash
        self.clamp_page_size, self.retry_info, self.service_disabled = clamp_page_size, retry_info, service_disabled
        self.sync_token_ttl_seconds = sync_token_ttl_seconds
        self.reads = self.rolling_window(_READ_QUOTA, 60.0, read_quota_per_minute)
        self.full_syncs = self.rolling_window(_FULL_SYNC_QUOTA, 60.0, full_sync_quota_per_minute)
        self.project_reads = self.rolling_window(_PROJECT_QUOTA, 60.0, project_read_quota_per_minute)
        self.writes = self.rolling_window(_WRITE_QUOTA, 60.0, write_quota_per_minute)
        self.legacy_etag_412 = legacy_etag_412  # a stale etag: 412, as older generated clients documented

    # -- SimulatorBase --------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return resource_name(person.seq)

    def api_routes(self) -> list[BaseRoute]:
        writes = ContactWrites(self)
        return [
            self.route("/v1/people/{owner}/connections", self._list_endpoint, "list"),
            self.route("/v1/people:batchGet", self._batch_get_endpoint, "batch_get"),
            self.route("/v1/people:createContact", writes.create, "write", ["POST"]),
            Route("/v1/people/{person_id}", self._get_endpoint, methods=["GET"]),
            self.route("/v1/people/{person_id}", writes.modify, "write", ["PATCH", "DELETE"]),
        ]

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
        if missing:
            message = f"Request is missing required authentication credential. {_AUTH_HINT}"
            return Refusal(401, "UNAUTHENTICATED", message, headers=headers, reason="CREDENTIALS_MISSING")
        message = f"Request had invalid authentication credentials. {_AUTH_HINT}"
        return Refusal(401, "UNAUTHENTICATED", message, headers=headers)

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") is None:
            return self.refusal(request, self.unauthenticated(request, missing=True))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.refusal(request, self.unauthenticated(request, missing=False))
        return None

    def insufficient_scope(self, request: Request) -> Refusal:
        return Refusal(403, "PERMISSION_DENIED", _SCOPE, reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT")

    def authorize(self, request: Request, kind: str) -> Refusal | None:
        if self.service_disabled:
            message = "People API has not been used in project 123456789 before or it is disabled."
            return Refusal(403, "PERMISSION_DENIED", message, reason="SERVICE_DISABLED")
        return None

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        """An AIP-193 error body; `details` (reason, domain) become a google.rpc.ErrorInfo detail."""
        code, info = refused.code, refused.details
        error: dict[str, Any] = {
            "code": refused.status,
            "message": refused.message,
            **({"status": code} if code else {}),
        }
        if info:
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "googleapis.com", **info}
            ]
        return self.answer({"error": error}, refused.status, request, refused.headers)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        return self._quota_exceeded(limit, wait)

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        """Every read spends the per-minute read quota; the first page of a full sync also the fixed one."""
        if kind == "write":
            return [(self.writes, 1)]
        params = request.query_params
        full_sync = (
            kind == "list" and _flag(params, "requestSyncToken") and not {"syncToken", "pageToken"} & set(params)
        )
        reads: list[tuple[Limit, int]] = [(self.reads, 1), (self.project_reads, 1)]
        return [*reads, (self.full_syncs, 1)] if full_sync else reads

    # -- endpoints ------------------------------------------------------------------------------

    async def _list_endpoint(self, request: Request) -> Response:
        if request.path_params["owner"] != "me":
            raise _bad_request(
                "Only the authenticated user's contacts can be listed: the resource name must be people/me."
            )
        with self.lock:
            return self.answer(self._connections(request.query_params))

    async def _get_endpoint(self, request: Request) -> Response:
        raw_path: bytes = request.scope.get("raw_path") or b""
        if self.reject_encoded_slash and b"%2f" in raw_path.lower():
            return _html_404(raw_path.decode(errors="replace"))  # answered by Google's front end, before auth
        if (early := await self.admit(request, "get")) is not None:
            return early
        fields = _person_fields(request.query_params)
        with self.lock:
            person = self.find(f"people/{request.path_params['person_id']}")
            if person is None or person.deleted:
                raise Refusal(404, "NOT_FOUND", render.NOT_FOUND)
            return self.answer(render.person(person, fields))

    async def _batch_get_endpoint(self, request: Request) -> Response:
        names = request.query_params.getlist("resourceNames")
        fields = _person_fields(request.query_params)
        if not names or len(names) > MAX_BATCH:
            raise _bad_request(f"resourceNames must hold between 1 and {MAX_BATCH} resource names.")
        with self.lock:
            return self.answer({"responses": [render.person_response(n, self.find(n), fields) for n in names]})

    # -- listing --------------------------------------------------------------------------------

    def _connections(self, params: QueryParams) -> dict[str, Any]:
        fields, size = _person_fields(params), self._page_size(params.get("pageSize"))
        state, page_token, total = self._state(params), params.get("pageToken"), 0
        profiles = "READ_SOURCE_TYPE_PROFILE" in params.getlist("sources")
        if state["m"] == "sync":
            people, more = self._changed_page(state["a"], state["h"], size)
            records = [render.sync_entry(p, fields, profiles) for p in people]
            after: Any = people[-1].change if people else state["a"]
        else:
            people, more, total = self._live_page(state["s"], state["a"], size)
            records = [render.person(p, fields, profiles) for p in people]
            after = list(_SORT_KEYS[state["s"]](people[-1])) if people else state["a"]
        body: dict[str, Any] = {"connections": records} if records or not self.omit_empty_connections else {}
        if more:
            repeat = page_token is not None and self.take_repeat()
            nxt = {**state, "a": after, "f": _fingerprint(params, "pageToken")}
            body["nextPageToken"] = page_token if repeat else encode_token(nxt)
        elif _flag(params, "requestSyncToken"):
            body["nextSyncToken"] = self._issue_sync_token(state["h"], _fingerprint(params, "pageToken", "syncToken"))
        if total:  # proto3 JSON leaves zeros out
            body["totalPeople"] = body["totalItems"] = total
        return body

    def _state(self, params: QueryParams) -> dict[str, Any]:
        """Where this page starts: `m` full listing or sync, after `a`, up to change `h`, in sort order `s`."""
        sort, sync_token, page_token = params.get("sortOrder"), params.get("syncToken"), params.get("pageToken")
        _check_choices(params, sort, sync_token)
        if page_token is not None:
            state = _decode(page_token, "page token", {"m", "a", "h", "f"})
            if state["f"] != _fingerprint(params, "pageToken"):
                raise _bad_request(_MISMATCH)
            return state
        if sync_token is not None:
            since = self._accept_sync_token(sync_token, _fingerprint(params, "pageToken", "syncToken"))
            return {"m": "sync", "a": since, "h": self._horizon()}
        return {"m": "full", "a": None, "h": self._horizon(), "s": sort or "LAST_MODIFIED_ASCENDING"}

    def _live_page(self, sort: str, after: list[Any] | None, size: int) -> tuple[list[Person], bool, int]:
        keys, people = self._ordered(sort)
        start = 0 if after is None else bisect.bisect_right(keys, tuple(after))
        return people[start : start + size], start + size < len(people), len(people)

    def _changed_page(self, after: int, horizon: int, size: int) -> tuple[list[Person], bool]:
        changes, by_change = self._by_change()
        start, end = bisect.bisect_right(changes, after), bisect.bisect_right(changes, horizon)
        return by_change[start : min(start + size, end)], start + size < end

    def _ordered(self, sort: str) -> tuple[list[tuple[Any, ...]], list[Person]]:
        """Live people in `sort` order and their sort keys, rebuilt only after a mutation."""

        def build() -> tuple[list[tuple[Any, ...]], list[Person]]:
            people = sorted(self.people.live(), key=_SORT_KEYS[sort])
            return [_SORT_KEYS[sort](p) for p in people], people

        return self.people.view(("order", sort), build)

    def _by_change(self) -> tuple[list[int], list[Person]]:
        """Everyone (deleted people too) in change order, and their change numbers."""

        def build() -> tuple[list[int], list[Person]]:
            people = sorted(self.people.all, key=lambda p: p.change)
            return [p.change for p in people], people

        return self.people.view("by_change", build)

    def _horizon(self) -> int:
        """The newest change a sync may deliver: changes younger than `sync_delay_seconds` wait."""
        if self.sync_delay_seconds <= 0:
            return self.people.last_change
        _, by_change = self._by_change()
        cutoff, index = self.clock.time() * 1000 - self.sync_delay_seconds * 1000, len(by_change)
        while index and by_change[index - 1].modified_ms > cutoff:
            index -= 1
        return by_change[index - 1].change if index else 0

    def _page_size(self, raw: str | None) -> int:
        if raw is None or raw.strip() == "":
            return DEFAULT_PAGE_SIZE
        try:
            size = int(raw)
        except ValueError:
            raise _bad_request(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"") from None
        if size < 0 or (size > MAX_PAGE_SIZE and not self.clamp_page_size):
            raise _bad_request(f"Page size must be between 1 and {MAX_PAGE_SIZE} (0 or unset: {DEFAULT_PAGE_SIZE}).")
        return min(size, MAX_PAGE_SIZE) if size else DEFAULT_PAGE_SIZE

    # -- sync tokens and quotas ------------------------------------------------------------------

    def _issue_sync_token(self, change: int, fingerprint: str) -> str:
        return encode_token({"c": change, "n": self.issue_token(), "t": self.clock.now_ms(), "f": fingerprint})

    def _accept_sync_token(self, token: str, fingerprint: str) -> int:
        state = _decode(token, "sync token", {"c", "n", "t", "f"})
        if state["f"] != fingerprint:
            raise _bad_request(_MISMATCH)
        if self.token_expired(state["n"]) or self.clock.time() * 1000 - state["t"] > self.sync_token_ttl_seconds * 1000:
            raise self._expired()
        return int(state["c"])

    def _expired(self) -> Refusal:
        if self.expired_status == 410:  # the older answer: the status alone says it
            return Refusal(410, "", _EXPIRED)
        return Refusal(
            400, "FAILED_PRECONDITION", _EXPIRED, reason="EXPIRED_SYNC_TOKEN", domain="people.googleapis.com"
        )

    def _quota_exceeded(self, metric: str, wait: float) -> Response:
        message = (
            f"Quota exceeded for quota metric '{metric}' and limit '{metric} per minute per user' of service "
            "'people.googleapis.com' for consumer 'project_number:123456789'."
        )
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {"service": "people.googleapis.com", "consumer": "projects/123456789"},
            }
        ]
        if self.retry_info:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait:.3f}s"})
        error = {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}
        return self.answer({"error": error}, 429)


def _person_fields(params: QueryParams) -> frozenset[str]:
    names = [n.strip() for value in params.getlist("personFields") for n in value.split(",") if n.strip()]
    if not names:
        raise _bad_request(_NO_FIELDS)
    unknown = [n for n in names if n not in PERSON_FIELDS]
    if unknown:
        raise _bad_request(f'Invalid personFields mask path: "{unknown[0]}". {_NO_FIELDS.split(". ", 1)[1]}')
    return frozenset(names)


def _check_choices(params: QueryParams, sort: str | None, sync_token: str | None) -> None:
    if sort is not None and sort not in _SORT_KEYS:
        raise _bad_request(
            f"Invalid value at 'sort_order' (type.googleapis.com/google.people.v1.SortOrder), \"{sort}\""
        )
    if sort is not None and sync_token is not None:
        raise _bad_request("sortOrder cannot be used with syncToken.")
    for source in params.getlist("sources"):
        if source not in SOURCES:
            raise _bad_request(
                f"Invalid value at 'sources' (type.googleapis.com/google.people.v1.ReadSourceType), \"{source}\""
            )
    if params.get("requestSyncToken", "false").lower() not in ("true", "false"):
        raise _bad_request(f"Invalid value at 'request_sync_token' (TYPE_BOOL), \"{params['requestSyncToken']}\"")


def _flag(params: QueryParams, name: str) -> bool:
    return params.get(name, "false").lower() == "true"


def _fingerprint(params: QueryParams, *ignored: str) -> str:
    """What a page or sync token is bound to: every other parameter (auth and `fields` aside)."""
    kept = sorted((k, v) for k, v in params.multi_items() if k not in ignored and k not in ("fields", "access_token"))
    return hashlib.sha256(orjson.dumps(kept)).hexdigest()[:12]


def _decode(token: str, what: str, keys: set[str]) -> dict[str, Any]:
    state = decode_token(token)
    if not isinstance(state, dict) or not keys <= set(state):
        raise _bad_request(f"The {what} is not valid.")
    return state


def _bad_request(message: str) -> Refusal:
    return Refusal(400, "INVALID_ARGUMENT", message)


def _html_404(path: str) -> Response:
    page = (
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
        f"  <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found "
        "on this server.  <ins>That’s all we know.</ins>\n"
    )
    return HTMLResponse(page, status_code=404)
