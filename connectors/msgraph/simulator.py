"""An in-memory Microsoft Graph v1.0 users API on `SimulatorBase`, for tests, demos and benchmarks.

It serves `GET /v1.0/users`, `/v1.0/users/{id | userPrincipalName}`, `/v1.0/users/delta` and
`/v1.0/directory/deletedItems/microsoft.graph.user` as `api-specs/msgraph.md` describes them: bearer auth
with `InvalidAuthenticationToken` 401s; `$top` 1-999 (default 100, `$top=1000` a 400), no `$skip`;
`$select` (unknown names a 400, default property set without it); absolute `@odata.nextLink`s carrying the
original query and an opaque `$skiptoken`, absent on the last page; `$count`/`$search`/`$orderby` only with
`ConsistencyLevel: eventual`; delta rounds paged with `$skiptoken` (pages may be empty) and ended by an
`@odata.deltaLink`, `@removed` with reason `changed` (soft delete) or `deleted` (purged), `$deltatoken=latest`,
`Prefer: return=minimal`, delta tokens that expire after 7 days (400 `syncStateNotFound`); the resource-unit
bucket of the identity service (list 2 units, other reads 1, `$select` -1, `$top` < 20 -1) with
`x-ms-resource-unit`, `x-ms-throttle-*` headers and 429 `TooManyRequests` + `Retry-After`.

Users are never purged by themselves: `delete` soft-deletes, `purge` deletes permanently.

    python -m connectors.msgraph.simulator --port 8420 --records 1000 --seed 7 --token X
"""

from __future__ import annotations

import bisect
import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
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

__all__ = ["DEFAULT_TOKEN", "MAX_TOP", "TOKEN_LIFETIME_SECONDS", "GraphSimulator", "main", "make_simulator"]

DEFAULT_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20ifQ.c2ltLXNpZw"
MAX_TOP, DEFAULT_TOP = 999, 100
TOKEN_LIFETIME_SECONDS = 7 * 86_400  # delta tokens of directory objects
TENANT_ID, APP_ID = "2f9e8d7c-6b5a-4c3d-9e1f-0a2b4c6d8e0f", "9c1e5b7a-3d2f-4a6b-8e0c-1f3a5c7e9b2d"
_IDS = uuid.UUID("6f1c2d3e-4b5a-4978-8a9b-0c1d2e3f4a5b")  # namespace of the simulated user ids
_WINDOW_SECONDS = 10.0
_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
_NOT_FOUND = "Resource '{}' does not exist or one of its queried reference-property objects are not present."
_EXPIRED = "The sync state generation is not found. The delta token is expired and data must be synchronized again."
_DEFAULT_SELECT = ("businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
                   "officeLocation", "preferredLanguage", "surname", "userPrincipalName")  # fmt: skip


@functools.cache
def _user_id(seq: int) -> str:
    return str(uuid.uuid5(_IDS, f"user-{seq}"))


def _upn(person: Person) -> str:
    return f"{person.email.partition('@')[0]}@contoso.onmicrosoft.com"


def _iso(ms: int) -> str:
    """Graph's timestamps: UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PROPERTIES: dict[str, Callable[[Person], Any]] = {
    "id": lambda p: _user_id(p.seq),
    "accountEnabled": lambda p: True,
    "businessPhones": lambda p: [p.phone] if p.phone else [],
    "companyName": lambda p: p.company,
    "createdDateTime": lambda p: _iso(p.created_ms),
    "deletedDateTime": lambda p: None if p.deleted_ms is None else _iso(p.deleted_ms),
    "displayName": lambda p: p.full_name,
    "givenName": lambda p: p.first,
    "jobTitle": lambda p: p.title,
    "mail": lambda p: p.email,
    "mailNickname": lambda p: p.email.partition("@")[0],
    "mobilePhone": lambda p: None,
    "officeLocation": lambda p: None,
    "preferredLanguage": lambda p: "en-US",
    "surname": lambda p: p.last,
    "userPrincipalName": lambda p: _upn(p),
    "userType": lambda p: "Member",
}
_CANONICAL = {name.lower(): name for name in _PROPERTIES}  # Graph matches $select names case-insensitively


@dataclass(frozen=True)
class _Round:
    """One delta round: changes in (since, upto], read up to `pos`; `initial` lists live users only."""

    since: int
    upto: int
    pos: int
    initial: bool
    select: tuple[str, ...]


class GraphSimulator(SimulatorBase):
    """Seeded Entra ID users behind a Starlette app (`.app`); ids are GUIDs derived from creation order."""

    connector = "msgraph"
    oauth_quirks = OAuthQuirks(
        authorize_path="/{directory}/oauth2/v2.0/authorize",
        token_path="/{directory}/oauth2/v2.0/token",
        revoke_path="/v1.0/me/revokeSignInSessions",
        revoke_signs_out=True,
        id_token={"tid": TENANT_ID, "iss": f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"},
        rotate_refresh=True,
        client_credentials=True,
        invalid_grant=lambda: (
            400,
            {
                "error": "invalid_grant",
                "error_description": "AADSTS50173: The provided grant has expired due to it being revoked.",
                "error_codes": [50173],
            },
        ),
    )

    counters = ("list_requests", "get_requests", "delta_requests", "deleted_items_requests")
    fault_limit = "resource_units"
    server_error = (500, "UnknownError", "An internal server error occurred.")
    malformed_body = b'{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users","value":[{"id":"'
    media_type = _JSON

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        delta_page_size: int = 100,
        resource_units: int | None = None,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        super().__init__(records, seed, token=token)
        self.delta_page_size = delta_page_size
        # The app+tenant read quota per 10 s grows with the tenant: <50 users, 50-500, more.
        self.resource_units = resource_units or (3_500 if records < 50 else 5_000 if records <= 500 else 8_000)
        self.bucket = self.rolling_window("resource_units", _WINDOW_SECONDS, self.resource_units)

    # -- SimulatorBase -----------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return _user_id(person.seq)

    def api_routes(self) -> list[BaseRoute]:
        deleted_users = "/v1.0/directory/deletedItems/microsoft.graph.user"
        return [
            self.route("/v1.0/users", self._list_endpoint, "list_requests"),
            self.route("/v1.0/users/delta", self._delta_endpoint, "delta_requests"),
            self.route("/v1.0/users/{user_id}", self._get_endpoint, "get_requests"),
            self.route(deleted_users, self._deleted_endpoint, "deleted_items_requests"),
        ]

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        message = "Access token is empty." if missing else "Access token validation failure. Invalid audience."
        return Refusal(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": _CHALLENGE})

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        return self._error(request, refused.status, refused.code, refused.message, refused.headers)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        headers = {"Retry-After": f"{wait:g}", **_THROTTLED}
        return self._error(request, 429, "TooManyRequests", "Too many requests", headers)

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        """The resource-unit bucket of the identity service: the request's cost, shown in x-ms-resource-unit."""
        request.state.units = _cost(kind, request)
        return [(self.bucket, request.state.units)]

    # -- the Python control API --------------------------------------------------------------------

    def delete(self, ids: int | Sequence[str]) -> list[str]:
        """Soft-delete: the users move to deletedItems and show in delta as `@removed: changed`."""
        return super().delete(ids)

    def purge(self, ids: int | Sequence[str]) -> list[str]:
        """Delete permanently (live or soft-deleted users): delta shows `@removed: deleted`."""
        return super().purge(ids)

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.bucket.clear()

    def notification(self, ids: Sequence[str], change_type: str, client_state: str) -> bytes:
        """The body Graph POSTs to a subscription's notificationUrl for these users."""
        value = [
            {
                "subscriptionId": str(uuid.uuid5(_IDS, f"subscription-{client_state}")),
                "subscriptionExpirationDateTime": "2024-05-28T12:00:00+00:00",
                "changeType": change_type,
                "resource": f"Users/{user_id}",
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.User",
                    "@odata.id": f"Users/{user_id}",
                    "id": user_id,
                    "organizationId": TENANT_ID,
                },
                "clientState": client_state,
                "tenantId": TENANT_ID,
            }
            for user_id in ids
        ]
        return orjson.dumps({"value": value})

    # -- endpoints ---------------------------------------------------------------------------------

    async def _list_endpoint(self, request: Request) -> Response:
        return self._listing(request, self._seqs(deleted=False), "users")

    async def _deleted_endpoint(self, request: Request) -> Response:
        """Soft-deleted users (kept 30 days), with deletedDateTime; purged ones are gone."""
        return self._listing(request, self._seqs(deleted=True), "directory/deletedItems/microsoft.graph.user")

    async def _get_endpoint(self, request: Request) -> Response:
        raw_id: str = request.path_params["user_id"]
        select = _select(request)
        with self.lock:
            person = self.find(raw_id.lower()) or self._by_upn().get(raw_id.lower())
            if person is None or person.deleted:
                raise Refusal(404, "Request_ResourceNotFound", _NOT_FOUND.format(raw_id))
            body = {"@odata.context": _context(request, "users", select, "/$entity"), **_render(person, select)}
        return self._json(request, body)

    async def _delta_endpoint(self, request: Request) -> Response:
        params = request.query_params
        minimal = "return=minimal" in request.headers.get("prefer", "").replace(" ", "")
        with self.lock:
            if "$skiptoken" in params:
                state = self._decode(params["$skiptoken"], "skip")
            elif params.get("$deltatoken") == "latest":
                last = self.people.last_change
                state = _Round(last, last, last, False, _select(request))
            elif "$deltatoken" in params:
                since = self._decode(params["$deltatoken"], "delta")
                state = _Round(since.upto, self.people.last_change, since.upto, False, since.select)
            else:
                state = _Round(0, self.people.last_change, 0, True, _select(request))
            keys, order = self._change_index()
            start, stop = bisect.bisect_right(keys, state.pos), bisect.bisect_right(keys, state.upto)
            end = min(start + self.delta_page_size, stop)
            value = [r for p in order[start:end] if (r := self._delta_record(p, state, minimal)) is not None]
            body: dict[str, Any] = {"@odata.context": _context(request, "users", state.select, "")}
            if end < stop:
                repeat = "$skiptoken" in params and self.take_repeat()
                token = params["$skiptoken"] if repeat else self._encode("skip", state, keys[end - 1])
                body["@odata.nextLink"] = _link(request, "/v1.0/users/delta", [("$skiptoken", token)])
            else:
                token = self._encode("delta", state, state.upto)
                body["@odata.deltaLink"] = _link(request, "/v1.0/users/delta", [("$deltatoken", token)])
            body["value"] = value
        return self._json(request, body)

    # -- helpers -----------------------------------------------------------------------------------

    def _listing(self, request: Request, seqs: list[int], entity_set: str) -> Response:
        """One page of `seqs` (ascending): `$top` of them after the `$skiptoken`'s position."""
        params, select, top = request.query_params, _select(request), _top(request)
        with self.lock:
            start = 0 if "$skiptoken" not in params else bisect.bisect_right(seqs, _page_position(params))
            page = [self.people.all[seq] for seq in seqs[start : start + top]]
            body: dict[str, Any] = {"@odata.context": _context(request, entity_set, select, "")}
            if params.get("$count", "").lower() == "true":
                body["@odata.count"] = len(seqs)
            if start + top < len(seqs):
                repeat = "$skiptoken" in params and self.take_repeat()
                token = params["$skiptoken"] if repeat else encode_token({"after": page[-1].seq})
                query = [(k, v) for k, v in params.multi_items() if k != "$skiptoken"] + [("$skiptoken", token)]
                body["@odata.nextLink"] = _link(request, request.url.path, query)
            body["value"] = [_render(p, select) for p in page]
        return self._json(request, body)

    def _delta_record(self, person: Person, state: _Round, minimal: bool) -> dict[str, Any] | None:
        user_id = _user_id(person.seq)
        if person.deleted:
            reason = "deleted" if person.purged else "changed"
            return None if state.initial else {"id": user_id, "@removed": {"reason": reason}}
        if minimal and not state.initial and person.created_change <= state.since:
            return {"id": user_id, **({"jobTitle": person.title} if "jobTitle" in state.select else {})}
        return _render(person, state.select)

    def _change_index(self) -> tuple[list[int], list[Person]]:
        """Users ordered by their last change, rebuilt only after mutations: delta pages stay O(page)."""

        def build() -> tuple[list[int], list[Person]]:
            order = sorted(self.people.all, key=lambda p: p.change)
            return [p.change for p in order], order

        return self.people.view("changes", build)

    def _seqs(self, *, deleted: bool) -> list[int]:
        """Live users, or soft-deleted ones (purged ones are in neither), ascending."""
        return self.people.view(
            ("seqs", deleted),
            lambda: [p.seq for p in self.people.all if p.deleted == deleted and not p.purged],
        )

    def _by_upn(self) -> dict[str, Person]:
        return self.people.view("by_upn", lambda: {_upn(p): p for p in self.people.all})

    def _encode(self, kind: str, state: _Round, position: int) -> str:
        """A skip or delta token: the round's state, when it was issued and its issue number."""
        fields = [state.since, state.upto, position, state.initial, list(state.select)]
        return encode_token({"k": kind, "n": self.issue_token(), "t": int(self.clock.time()), "r": fields})

    def _decode(self, token: str, kind: str) -> _Round:
        try:
            data = decode_token(token)
            since, upto, pos, initial, select = data["r"]
            issued, number = float(data["t"]), int(data["n"])
            if data["k"] != kind:
                raise ValueError(kind)
        except (ValueError, KeyError, TypeError):
            raise Refusal(400, "badRequest", f"The {kind} token is not valid.") from None
        if self.clock.time() - issued > TOKEN_LIFETIME_SECONDS or self.token_expired(number):
            raise Refusal(400, "syncStateNotFound", _EXPIRED)
        return _Round(int(since), int(upto), int(pos), bool(initial), tuple(select))

    def _json(self, request: Request, body: Any) -> Response:
        headers = {**_request_ids(request), "x-ms-resource-unit": str(getattr(request.state, "units", 1))}
        load = self.bucket.used() / self.resource_units
        if load > 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{load:.1f}"
        return Response(orjson.dumps(body), media_type=_JSON, headers=headers)

    def _error(
        self, request: Request | None, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        ids = _request_ids(request)
        inner = {"date": datetime.fromtimestamp(self.clock.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S"), **ids}
        extra = dict(headers or {})
        if status == 401:
            extra["WWW-Authenticate"] = _CHALLENGE
        body = {"error": {"code": code, "message": message, "innerError": inner}}
        return Response(orjson.dumps(body), status_code=status, media_type=_JSON, headers={**ids, **extra})

    def _person(self, user_id: str) -> Person:
        person = self.find(user_id)
        assert person is not None, user_id
        return person


_CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)
_THROTTLED = {
    "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{APP_ID}/{TENANT_ID}",
    "x-ms-throttle-information": "ResourceUnitLimitExceeded",
}


make_simulator = GraphSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


# -- OData query options ---------------------------------------------------------------------------


def _select(request: Request) -> tuple[str, ...]:
    """`$select` names in Graph's spelling (id always comes back); the default set without it."""
    params = request.query_params
    for option in ("$skip", "$filter", "$expand"):
        if option in params:
            raise Refusal(400, "Request_BadRequest", f"'{option}' is not supported by the simulator.")
    advanced = [o for o in ("$count", "$search", "$orderby") if o in params]
    if advanced and request.headers.get("consistencylevel", "").lower() != "eventual":
        message = f"{advanced[0]} is only supported with the header ConsistencyLevel: eventual."
        raise Refusal(400, "Request_UnsupportedQuery", message)
    if "$search" in params or "$orderby" in params:
        raise Refusal(400, "Request_UnsupportedQuery", "$search and $orderby are not simulated.")
    raw = params.get("$select")
    if raw is None:
        return _DEFAULT_SELECT
    names = []
    for name in filter(None, (n.strip() for n in raw.split(","))):
        if name.lower() not in _CANONICAL:
            message = f"Could not find a property named '{name}' on type 'microsoft.graph.user'."
            raise Refusal(400, "Request_BadRequest", message)
        names.append(_CANONICAL[name.lower()])
    return tuple(dict.fromkeys(["id", *names]))


def _top(request: Request) -> int:
    raw = request.query_params.get("$top")
    if raw is None:
        return DEFAULT_TOP
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOP:
        message = f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_TOP} inclusive."
        raise Refusal(400, "Request_UnsupportedQuery", message)
    return int(raw)


def _page_position(params: Any) -> int:
    try:
        return int(decode_token(params["$skiptoken"])["after"])
    except (ValueError, KeyError, TypeError):
        message = "The specified page token value has expired and can no longer be included in your request."
        raise Refusal(400, "Directory_ExpiredPageToken", message) from None


def _cost(kind: str, request: Request) -> int:
    """Resource units of one read: list 2, others 1; `$select` -1, `$expand` +1, `$top` < 20 -1; at least 1."""
    params = request.query_params
    units = 2 if kind == "list_requests" else 1
    units += ("$expand" in params) - ("$select" in params)
    top = params.get("$top", "")
    units -= top.isdigit() and int(top) < 20
    return max(units, 1)


# -- small parts -----------------------------------------------------------------------------------


def _render(person: Person, select: Sequence[str]) -> dict[str, Any]:
    return {name: _PROPERTIES[name](person) for name in select}


def _context(request: Request, entity_set: str, select: Sequence[str], suffix: str) -> str:
    shown = "" if tuple(select) == _DEFAULT_SELECT else f"({','.join(n for n in select if n != 'id')})"
    return f"{_root(request)}/v1.0/$metadata#{entity_set}{shown}{suffix}"


def _link(request: Request, path: str, query: list[tuple[str, str]]) -> str:
    """An absolute link back to this server, as Graph writes them (`$` and `,` unescaped)."""
    return f"{_root(request)}{path}?{urlencode(query, safe='$,()', quote_via=quote)}"


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _request_ids(request: Request | None) -> dict[str, str]:
    request_id = str(uuid.uuid4())
    client = request.headers.get("client-request-id") if request is not None else None
    return {"request-id": request_id, "client-request-id": client or request_id}


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(GraphSimulator, argv, "Serve a simulated Microsoft Graph v1.0 users API (Entra ID)."))


if __name__ == "__main__":
    main()
