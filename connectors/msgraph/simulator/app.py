"""`GraphSimulator`: users, their delta query, deleted items and subscriptions on `SimulatorBase`."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.msgraph.simulator.contacts import Contacts, contact_id
from connectors.msgraph.simulator.odata import Query, context, cost, page_position, query, select
from connectors.msgraph.simulator.subscriptions import Subscriptions, notification_body
from connectors.msgraph.simulator.wire import (
    FIELD_PROPERTIES,
    JSON,
    PROPERTIES,
    TENANT_ID,
    THROTTLED,
    error,
    link,
    manager_of,
    request_ids,
    root,
    upn,
    user_id,
)
from connectors.simulation import (
    Limit,
    OAuthQuirks,
    People,
    Person,
    Refusal,
    RetryPolicy,
    Sent,
    SimulatorBase,
    decode_token,
    encode_token,
)

__all__ = ["DEFAULT_TOKEN", "TOKEN_LIFETIME_SECONDS", "GraphSimulator"]

DEFAULT_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20ifQ.c2ltLXNpZw"
TOKEN_LIFETIME_SECONDS = 7 * 86_400  # delta tokens of directory objects
_NOT_FOUND = "Resource '{}' does not exist or one of its queried reference-property objects are not present."
_EXPIRED = "The sync state generation is not found. The delta token is expired and data must be synchronized again."
_DENIED = "Insufficient privileges to complete the operation."
_DELETED_USERS = "directory/deletedItems/microsoft.graph.user"
_RECYCLE_MS = 30 * 86_400_000  # soft-deleted users are kept 30 days, then deleted for good


@dataclass(frozen=True)
class _Round:
    """One delta round: changes in (since, upto], read up to `pos`; `initial` lists live users only."""

    since: int
    upto: int
    pos: int
    initial: bool
    select: tuple[str, ...]


class GraphSimulator(SimulatorBase):
    """Seeded Entra ID users behind a Starlette app (`.app`); ids are GUIDs derived from creation order.

    `delete` soft-deletes (the user moves to deletedItems for 30 days), `restore` brings it back, `purge`
    deletes for good. Subscriptions get change notifications; `lifecycle` sends lifecycle notifications.
    """

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
    media_type = JSON
    required_scopes = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", ".default"})
    webhook_policy = RetryPolicy(  # retried for up to 4 hours; an answer must come within 3 seconds
        delays=tuple(60.0 * 2**n for n in range(8)), give_up_after=4 * 3600.0, timeout=3.0
    )

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        delta_page_size: int = 100,
        resource_units: int | None = None,
        app_requests_per_10s: int = 130_000,
        app_units_per_20s: int = 150_000,
        contacts: int = 10,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self._contacts_seed = (contacts, seed)  # the mailbox's contacts, served beside the directory
        super().__init__(records, seed, token=token)
        self.delta_page_size = delta_page_size
        # The app+tenant read quota per 10 s grows with the tenant: <50 users, 50-500, more.
        self.resource_units = resource_units or (3_500 if records < 50 else 5_000 if records <= 500 else 8_000)
        self.bucket = self.rolling_window("resource_units", 10.0, self.resource_units)
        self.app_requests = self.rolling_window("app_requests", 10.0, app_requests_per_10s)
        self.app_units = self.rolling_window("app_units", 20.0, app_units_per_20s)
        assert self.outbox is not None
        self.subscriptions = Subscriptions(self.outbox, self.clock, self.webhook_client)

    # -- SimulatorBase -----------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return user_id(person.seq)

    def people_of(self, collection: str | None) -> tuple[People, Callable[[Person], str]]:
        """`contacts`: the mailbox's contacts, a second set beside the directory's users."""
        if collection == "contacts":
            return self.contacts.people, lambda person: contact_id(person.seq)
        return super().people_of(collection)

    def api_routes(self) -> list[BaseRoute]:
        subscription = "/v1.0/subscriptions/{subscription_id}"
        self.contacts = Contacts(self.route, *self._contacts_seed, self.people)
        return [
            *self.contacts.routes(),
            self.route("/v1.0/users", self._list_endpoint, "list_requests"),
            self.route("/v1.0/users/delta", self._delta_endpoint, "delta_requests"),
            self.route("/v1.0/users/{user_id}", self._get_endpoint, "get_requests"),
            self.route(f"/v1.0/{_DELETED_USERS}", self._deleted_endpoint, "deleted_items_requests"),
            self.route("/v1.0/subscriptions", self._subscriptions_endpoint, "subscriptions", ["GET", "POST"]),
            self.route(subscription, self._subscription_endpoint, "subscriptions", ["GET", "PATCH", "DELETE"]),
            Route("/_sim/lifecycle", self._lifecycle_endpoint, methods=["POST"]),
        ]

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        message = "Access token is empty." if missing else "Access token validation failure. Invalid audience."
        return Refusal(401, "InvalidAuthenticationToken", message)

    def insufficient_scope(self, request: Request) -> Refusal:
        return Refusal(403, "Authorization_RequestDenied", _DENIED)

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        return error(request, self.clock.time(), refused.status, refused.code, refused.message, refused.headers)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        headers = {"Retry-After": f"{wait:g}", **THROTTLED}
        return error(request, self.clock.time(), 429, "TooManyRequests", "Too many requests", headers)

    def authorize(self, request: Request, kind: str) -> Refusal | None:
        """Nothing to refuse; but first, users soft-deleted 30 days ago are deleted for good."""
        with self.lock:
            horizon = self.clock.now_ms() - _RECYCLE_MS
            lapsed = [p for p in self.people.all if p.deleted and not p.purged and (p.deleted_ms or 0) < horizon]
            if lapsed:
                self._report("purged", self.people.purge(lapsed))
        return None

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        """The identity service's resource units (app + tenant, and app across tenants) and the app's global
        request limit; the cost shows in x-ms-resource-unit."""
        request.state.units = cost(kind, request)
        return [(self.bucket, request.state.units), (self.app_units, request.state.units), (self.app_requests, 1)]

    def changed(self, kind: str, people: Sequence[Person]) -> None:
        self.subscriptions.notify(kind, people)

    # -- the Python control API --------------------------------------------------------------------

    def delete(self, ids: int | Sequence[str], *, by: str | None = None) -> list[str]:
        """Soft-delete: the users move to deletedItems and show in delta as `@removed: changed`."""
        return super().delete(ids, by=by)

    def purge(self, ids: int | Sequence[str]) -> list[str]:
        """Delete permanently (live or soft-deleted users): delta shows `@removed: deleted`."""
        return super().purge(ids)

    def lifecycle(self, event: str, subscription_id: str | None = None) -> None:
        """Send a lifecycle notification (`missed`, `reauthorizationRequired`, `subscriptionRemoved`) to one
        subscription, or every one."""
        with self.lock:
            chosen = (
                [self.subscriptions.get(subscription_id)] if subscription_id else list(self.subscriptions.all.values())
            )
            for subscription in chosen:
                self.subscriptions.lifecycle(event, subscription)

    def lose_notifications(self, subscription_id: str | None = None) -> int:
        """Drop the change notifications waiting for one subscription (or every one), as Graph does when it gives
        up on a slow endpoint; how many were dropped. A `missed` lifecycle notification then says so."""
        assert self.outbox is not None
        with self.lock:
            chosen = [subscription_id] if subscription_id else list(self.subscriptions.all)
            before = len(self.outbox.pending())
            for target in chosen:
                self.outbox.drop(target)
            return before - len(self.outbox.pending())

    async def deliver(self, client: httpx.AsyncClient | None = None) -> list[Sent]:
        with self.lock:
            self.subscriptions.sweep()
        return await super().deliver(client)

    def notification(self, ids: Sequence[str], change_type: str, client_state: str) -> bytes:
        """The body Graph POSTs to a subscription's notificationUrl for these users."""
        return notification_body(ids, change_type, client_state)

    # -- endpoints ---------------------------------------------------------------------------------

    async def _list_endpoint(self, request: Request) -> Response:
        return self._listing(request, self._seqs(deleted=False), "users")

    async def _deleted_endpoint(self, request: Request) -> Response:
        """Soft-deleted users (kept 30 days), with deletedDateTime; purged ones are gone."""
        return self._listing(request, self._seqs(deleted=True), _DELETED_USERS)

    async def _get_endpoint(self, request: Request) -> Response:
        raw_id: str = request.path_params["user_id"]
        options = query(request)
        with self.lock:
            person = self.find(raw_id.lower()) or self._by_upn().get(raw_id.lower())
            if person is None or person.deleted:
                raise Refusal(404, "Request_ResourceNotFound", _NOT_FOUND.format(raw_id))
            body = {"@odata.context": context(request, "users", options.select, "/$entity")}
            return self._json(request, {**body, **self._render(person, options)})

    async def _delta_endpoint(self, request: Request) -> Response:
        params = request.query_params
        for option in ("$filter", "$search", "$orderby", "$expand", "$top", "$skip"):
            if option in params:
                raise Refusal(400, "Request_UnsupportedQuery", f"'{option}' is not supported with delta on users.")
        minimal = "return=minimal" in request.headers.get("prefer", "").replace(" ", "")
        with self.lock:
            state = self._round(request)
            keys, order = self._change_index()
            start, stop = bisect.bisect_right(keys, state.pos), bisect.bisect_right(keys, state.upto)
            end = min(start + self.delta_page_size, stop)
            value = [r for p in order[start:end] if (r := self._delta_record(p, state, minimal)) is not None]
            body: dict[str, Any] = {"@odata.context": context(request, "users", state.select, "")}
            if end < stop:
                repeat = "$skiptoken" in params and self.take_repeat()
                token = params["$skiptoken"] if repeat else self._encode("skip", state, keys[end - 1])
                body["@odata.nextLink"] = link(request, "/v1.0/users/delta", [("$skiptoken", token)])
            else:
                token = self._encode("delta", state, state.upto)
                body["@odata.deltaLink"] = link(request, "/v1.0/users/delta", [("$deltatoken", token)])
            body["value"] = value
        return self._json(request, body)

    async def _subscriptions_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            created = await self.subscriptions.create(_json_body(await request.body()))
            return self._json(request, created.shown(request), 201)
        with self.lock:
            self.subscriptions.sweep()
            shown = [s.shown(request) for s in self.subscriptions.all.values()]
        return self._json(request, {"@odata.context": f"{root(request)}/v1.0/$metadata#subscriptions", "value": shown})

    async def _subscription_endpoint(self, request: Request) -> Response:
        subscription_id, body = request.path_params["subscription_id"], await request.body()
        with self.lock:
            if request.method == "DELETE":
                self.subscriptions.delete(subscription_id)
                return Response(status_code=204, headers=request_ids(request))
            if request.method == "PATCH":
                return self._json(request, self.subscriptions.renew(subscription_id, _json_body(body)).shown(request))
            return self._json(request, self.subscriptions.get(subscription_id).shown(request))

    async def _lifecycle_endpoint(self, request: Request) -> Response:
        """`POST /_sim/lifecycle {"event": "missed", "subscription": id?, "lose_notifications": true?}`."""
        try:
            body = orjson.loads(await request.body() or b"{}")
            chosen = body.get("subscription")
            lost = self.lose_notifications(chosen) if body.get("lose_notifications") else 0
            self.lifecycle(str(body.get("event")), chosen)
        except (orjson.JSONDecodeError, AttributeError, ValueError) as exc:
            return Response(orjson.dumps({"error": str(exc)}), 400, media_type=JSON)
        except Refusal as refused:
            return Response(orjson.dumps({"error": refused.message}), refused.status, media_type=JSON)
        return Response(orjson.dumps({"queued": body.get("event"), "lost": lost}), media_type=JSON)

    # -- helpers -----------------------------------------------------------------------------------

    def _listing(self, request: Request, seqs: list[int], entity_set: str) -> Response:
        """One page: `$top` users after the `$skiptoken`'s position, filtered, searched and ordered."""
        params, options = request.query_params, query(request)
        with self.lock:
            people = [self.people.all[seq] for seq in seqs]
            if options.keep is not None:
                people = [p for p in people if options.keep(p)]
            if options.order is not None:
                name, descending = options.order
                people.sort(key=lambda p: (PROPERTIES[name](p) is None, str(PROPERTIES[name](p)).lower(), p.seq))
                if descending:
                    people.reverse()
            start = self._start(params, people, options)
            page = people[start : start + options.top]
            body: dict[str, Any] = {"@odata.context": context(request, entity_set, options.select, "")}
            if options.count:
                body["@odata.count"] = len(people)
            if start + options.top < len(people):
                repeat = "$skiptoken" in params and self.take_repeat()
                mark = {"offset": start + len(page)} if options.order else {"after": page[-1].seq}
                token = params["$skiptoken"] if repeat else encode_token(mark)
                kept = [(k, v) for k, v in params.multi_items() if k != "$skiptoken"] + [("$skiptoken", token)]
                body["@odata.nextLink"] = link(request, request.url.path, kept)
            body["value"] = [self._render(p, options) for p in page]
        return self._json(request, body)

    def _start(self, params: Any, people: list[Person], options: Query) -> int:
        if "$skiptoken" not in params:
            return 0
        if options.order is not None:
            return page_position(params["$skiptoken"], "offset")
        return bisect.bisect_right([p.seq for p in people], page_position(params["$skiptoken"], "after"))

    def _render(self, person: Person, options: Query) -> dict[str, Any]:
        record = {name: PROPERTIES[name](person) for name in options.select}
        boss = manager_of(person) if options.expand_manager else None
        if boss is not None:
            manager = self.people.all[boss]
            record["manager"] = {"@odata.type": "#microsoft.graph.user", "id": user_id(boss)}
            record["manager"] |= {"displayName": manager.full_name, "mail": manager.email}
        return record

    def _round(self, request: Request) -> _Round:
        params = request.query_params
        if "$skiptoken" in params:
            return self._decode(params["$skiptoken"], "skip")
        if params.get("$deltatoken") == "latest":
            last = self.people.last_change
            return _Round(last, last, last, False, select(request))
        if "$deltatoken" in params:
            since = self._decode(params["$deltatoken"], "delta")
            return _Round(since.upto, self.people.last_change, since.upto, False, since.select)
        return _Round(0, self.people.last_change, 0, True, select(request))

    def _delta_record(self, person: Person, state: _Round, minimal: bool) -> dict[str, Any] | None:
        """A user's line in a delta round: `@removed`, the selected properties, or (`Prefer: return=minimal`)
        only the changed ones; an update of properties outside `$select` is not tracked."""
        user = user_id(person.seq)
        if person.deleted:
            reason = "deleted" if person.purged else "changed"
            return None if state.initial else {"id": user, "@removed": {"reason": reason}}
        if state.initial or max(person.created_change, person.restored_change) > state.since:
            return {name: PROPERTIES[name](person) for name in state.select}
        changed = {
            prop
            for c in person.history
            if state.since < c.change <= state.upto
            for prop in FIELD_PROPERTIES[c.field] & set(state.select)
        }
        if not changed:
            return None
        shown = changed if minimal else set(state.select)
        return {name: PROPERTIES[name](person) for name in state.select if name == "id" or name in shown}

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
        return self.people.view("by_upn", lambda: {upn(p): p for p in self.people.all})

    def _encode(self, kind: str, state: _Round, position: int) -> str:
        """A skip or delta token: the round's state, when it was issued and its issue number."""
        fields = [state.since, state.upto, position, state.initial, list(state.select)]
        return encode_token({"k": kind, "n": self.issue_token(), "t": int(self.clock.time()), "r": fields})

    def _decode(self, token: str, kind: str) -> _Round:
        try:
            data = decode_token(token)
            since, upto, pos, initial, chosen = data["r"]
            issued, number = float(data["t"]), int(data["n"])
            if data["k"] != kind:
                raise ValueError(kind)
        except (ValueError, KeyError, TypeError):
            raise Refusal(400, "badRequest", f"The {kind} token is not valid.") from None
        if self.clock.time() - issued > TOKEN_LIFETIME_SECONDS or self.token_expired(number):
            raise Refusal(400, "syncStateNotFound", _EXPIRED)
        return _Round(int(since), int(upto), int(pos), bool(initial), tuple(chosen))

    def _json(self, request: Request, body: Any, status: int = 200) -> Response:
        headers = {**request_ids(request), "x-ms-resource-unit": str(getattr(request.state, "units", 1))}
        load = self.bucket.used() / self.resource_units
        if load > 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{load:.1f}"
        return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def _json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise Refusal(400, "BadRequest", "The request body is not JSON.") from None
