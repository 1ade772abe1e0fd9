"""`HubSpotSimulator`: the CRM v3 contacts endpoints, limits and errors on `SimulatorBase`."""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.hubspot.simulator.search import MAX_SEARCH_LIMIT, SEARCH_CAP, filter_groups, search_names, sort
from connectors.hubspot.simulator.webhooks import APP_ID, POLICY, Webhooks
from connectors.hubspot.simulator.wire import (
    FIELD_OF,
    MAX_LIMIT,
    VALUES,
    company_id,
    cursor,
    error,
    invalid,
    iso,
    json_object,
    names,
    object_id,
    page_size,
    rate_limited,
    shown,
)
from connectors.hubspot.simulator.writes import ContactWrites
from connectors.simulation import Limit, OAuthQuirks, Person, Refusal, SimulatorBase, json_response

__all__ = ["DEFAULT_TOKEN", "HubSpotSimulator"]

DEFAULT_TOKEN = "pat-na1-demo-token"
MAX_BATCH = 100
_NOT_FOUND = "Object not found.  objectId are usually numeric."
_BATCH_MISSING = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
_BAD_CREDENTIALS = "Authentication credentials not found or invalid. Send a private app or OAuth 2.0 token."
_NO_API_KEYS = "API keys (hapikey) were retired; send a private app token as a Bearer token."
_SCOPES = "https://developers.hubspot.com/scopes"
_MISSING_SCOPES = f"This app hasn't been granted all required scopes to make this call. Read more: {_SCOPES}."
_VERSION = re.compile(r"^\d{4}-\d{2}$")  # date-versioned paths: /crm/objects/2026-03/contacts
_DAY_MS = 86_400_000


class HubSpotSimulator(SimulatorBase):
    """Seeded contacts behind a Starlette app (`.app`); the same seed gives the same contacts.

    Contact ids are ascending strings of 11-digit integers; every property value is a string or null.
    Searches count toward the daily limit and, when `search_per_second` is set, their own secondly limit.
    `delete` archives (restorable for `archive_retention_days`), `purge` is a GDPR delete, `merge` keeps
    the primary contact with `hs_merged_object_ids`.
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
    required_scopes = frozenset({"crm.objects.contacts.read"})
    webhook_policy = POLICY

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
        archive_retention_days: float = 90.0,
        time_zone_offset_hours: float = 0.0,
        webhook_batch_size: int = 100,
        webhook_duplicates: bool = False,
        webhook_shuffle: bool = False,
        webhook_timeout_seconds: float = 5.0,
        batch_reversed: bool = False,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self.batch_reversed = batch_reversed  # batch write results in another order than the inputs
        super().__init__(records, seed, token=token)
        self.rate_limit, self.rate_interval_ms, self.daily_limit = rate_limit, rate_interval_ms, daily_limit
        self.cap_oversized_limit, self.index_lag_ms = cap_oversized_limit, index_lag_ms
        self.search_per_second, self.archive_retention_days = search_per_second, archive_retention_days
        self.window = self.rolling_window("TEN_SECONDLY_ROLLING", rate_interval_ms / 1000, rate_limit)
        self.search_window = self.rolling_window("SECONDLY", 1.0, search_per_second or None)
        self.daily = self.daily_budget("DAILY", daily_limit, time_zone_offset_hours * 3600)
        assert self.outbox is not None
        self.outbox.policy = dataclasses.replace(POLICY, timeout=webhook_timeout_seconds)
        self.webhooks = Webhooks(
            self.outbox,
            self.clock,
            batch_size=webhook_batch_size,
            duplicates=webhook_duplicates,
            shuffle=webhook_shuffle,
        )

    # -- SimulatorBase -----------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return str(object_id(person.seq))

    def api_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Route("/_sim/webhooks/settings", self._webhook_settings, methods=["GET", "PUT"])]
        for base in ("/crm/v3/objects/contacts", "/crm/objects/{version}/contacts"):
            writes = ContactWrites(self)
            routes += [
                self.route(base, self._list_endpoint, "list_requests"),
                self.route(base, writes.create, "write_requests", ["POST"]),
                self.route(f"{base}/search", self._search_endpoint, "search_requests", ["POST"]),
                self.route(f"{base}/batch/read", self._batch_read_endpoint, "batch_requests", ["POST"]),
                *writes.routes(base),
                self.route(base + "/{contact_id}", self._get_endpoint, "get_requests"),
                self.route(base + "/{contact_id}", writes.update, "write_requests", ["PATCH"]),
                self.route(base + "/{contact_id}", writes.archive, "write_requests", ["DELETE"]),
            ]
        return routes

    def authenticate(self, request: Request) -> Response | None:
        if "hapikey" in request.query_params:
            return self.refusal(request, Refusal(401, "INVALID_AUTHENTICATION", _NO_API_KEYS))
        return super().authenticate(request)

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "INVALID_AUTHENTICATION", _BAD_CREDENTIALS)

    def insufficient_scope(self, request: Request) -> Refusal:
        required = {"requiredGranularScopes": sorted(self.required_scopes)}
        errors = [{"message": "One or more of the following scopes are required.", "context": required}]
        return Refusal(403, "MISSING_SCOPES", _MISSING_SCOPES, errors=errors, links={"scopes": _SCOPES})

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        return error(refused.status, refused.message, refused.code, refused.headers, **refused.details)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """A 429 keyed by `policyName`, without Retry-After; only the non-search limits carry rate headers."""
        searching = request is not None and request.url.path.endswith("/search")
        bare = limit == "SECONDLY" or (limit == "DAILY" and searching)
        return rate_limited(limit, {} if bare else self.headers(request))

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

    def changed(self, kind: str, people: Sequence[Person]) -> None:
        self.webhooks.notify(kind, people)

    # -- the Python control API --------------------------------------------------------------------

    def ids(self, *, archived: bool = False) -> list[str]:
        """All live (or archived and still restorable) ids in ascending order."""
        with self.lock:
            return [str(oid) for oid in self._ids(archived)]

    def merge(self, primary: str, merged: Sequence[str]) -> list[str]:
        """Merge live contacts into the live `primary`: they vanish, it lists them in `hs_merged_object_ids`."""
        with self.lock:
            kept = self.select([primary])
            gone = [p for p in self.select(merged) if kept and p.seq != kept[0].seq]
            if not kept or not gone:
                raise ValueError("merge needs a live primary and other live contacts")
            self.changed("merged", [self.people.merge(kept[0], gone)])
            return [self.external_id(p) for p in gone]

    def configure_webhooks(self, target_url: str, client_secret: str, subscriptions: Sequence[Any]) -> None:
        """The app's webhook settings, as `PUT /_sim/webhooks/settings` takes them."""
        self.webhooks.configure(target_url, client_secret, subscriptions)

    def stats(self) -> dict[str, int]:
        """Requests received (errors included) by kind, and live/archived record counts."""
        with self.lock:
            return {**self.counts, "records": len(self._ids(False)), "archived": len(self._ids(True))}

    # -- CRM endpoints -----------------------------------------------------------------------------

    async def _list_endpoint(self, request: Request) -> Response:
        params = _checked(request)
        limit = page_size(params.get("limit"), MAX_LIMIT, self.cap_oversized_limit)
        after = params.get("after")
        with self.lock:
            ids = self._ids(_archived(params))
            start = bisect.bisect_left(ids, cursor(after))
            page = ids[start : start + limit]
            body: dict[str, Any] = {"results": [self._render(self._person(str(oid)), params) for oid in page]}
            if start + limit < len(ids):
                nxt = after if after is not None and self.take_repeat() else str(ids[start + limit])
                link = str(request.url.include_query_params(after=nxt))
                body["paging"] = {"next": {"after": nxt, "link": link}}
            return self.answer(body)

    async def _get_endpoint(self, request: Request) -> Response:
        raw_id: str = request.path_params["contact_id"]
        params = _checked(request)
        with self.lock:
            person = self._resolve(raw_id, params.get("idProperty"))
            if person is None or not self._visible(person, _archived(params)):
                raise Refusal(404, "OBJECT_NOT_FOUND", _NOT_FOUND, context={"id": [raw_id]})
            return self.answer(self._render(person, params))

    async def _batch_read_endpoint(self, request: Request) -> Response:
        """Up to 100 contacts by id (or `idProperty`); 207 with `errors` when some are not found."""
        params, query = _checked(request), json_object(await request.body())
        inputs = query.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) and "id" in i for i in inputs):
            raise invalid("inputs must be a list of {id: ...}")
        if len(inputs) > MAX_BATCH:
            raise invalid(f"at most {MAX_BATCH} inputs per batch, got {len(inputs)}")
        shown_names = search_names(query.get("properties"))
        history = [n for n in query.get("propertiesWithHistory") or [] if n in VALUES]
        with self.lock:
            started, found, missing = self.clock.now_ms(), [], []
            for wanted in (str(i["id"]) for i in inputs):
                person = self._resolve(wanted, query.get("idProperty"))
                if person is not None and self._visible(person, _archived(params)):
                    found.append(self._render(person, params, shown_names, history))
                else:
                    missing.append(wanted)
            body: dict[str, Any] = {"status": "COMPLETE", "results": found}
            if missing:
                cause = {"status": "error", "category": "OBJECT_NOT_FOUND", "message": _BATCH_MISSING}
                body |= {"numErrors": len(missing), "errors": [{**cause, "context": {"ids": missing}}]}
            body |= {"startedAt": iso(started), "completedAt": iso(self.clock.now_ms())}
            return self.answer(body, 207 if missing else 200)

    async def _search_endpoint(self, request: Request) -> Response:
        """Live contacts matching the filter groups, sorted by one property; no rate-limit headers."""
        _checked(request)
        query = json_object(await request.body())
        groups, shown_names = filter_groups(query.get("filterGroups", [])), search_names(query.get("properties"))
        sort_key, descending = sort(query.get("sorts", []))
        limit = page_size(query.get("limit"), MAX_SEARCH_LIMIT, self.cap_oversized_limit)
        after = cursor(query.get("after"))
        if after + limit > SEARCH_CAP:
            raise invalid(f"a search can page through at most {SEARCH_CAP} results; narrow the filters instead")
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
            results = [self._render(p, None, shown_names) for p in page]
            body: dict[str, Any] = {"total": len(hits), "results": results}
            if after + len(page) < len(hits):
                repeat = "after" in query and self.take_repeat()
                body["paging"] = {"next": {"after": str(query["after"]) if repeat else str(after + len(page))}}
        return json_response(body)

    async def _webhook_settings(self, request: Request) -> Response:
        return await self.webhooks.settings(request)

    # -- helpers -----------------------------------------------------------------------------------

    def render_written(self, person: Person) -> dict[str, Any]:
        """A contact as a write answers it: the written properties and HubSpot's own."""
        return self._render(person, None, [*FIELD_OF, "createdate", "hs_object_id", "lastmodifieddate"])

    def by_email(self, email: Any) -> Person | None:
        """The live contact with this email (case-insensitive), if any."""
        if not isinstance(email, str) or not email:
            return None
        return next((p for p in self.people.live() if p.email.lower() == email.lower()), None)

    def resolve(self, raw_id: str, id_property: str | None) -> Person | None:
        return self._resolve(raw_id, id_property)

    def _ids(self, archived: bool) -> list[int]:
        """Live (or archived, not purged, within the retention) contact ids, ascending with creation order."""
        hour = self.clock.now_ms() // 3_600_000 if archived else 0
        return self.people.view(
            ("ids", archived, hour),
            lambda: [object_id(p.seq) for p in self.people.all if self._visible(p, archived)],
        )

    def _visible(self, person: Person, archived: bool) -> bool:
        """Whether `person` is served as live (or, `archived`, as a restorable archived contact)."""
        if not archived:
            return not person.deleted
        horizon = self.clock.now_ms() - self.archive_retention_days * _DAY_MS
        return person.deleted and not person.purged and (person.deleted_ms or 0) >= horizon

    def _person(self, contact_id: str) -> Person:
        person = self.find(contact_id)
        assert person is not None, contact_id
        return person

    def _render(
        self,
        person: Person,
        params: QueryParams | None,
        shown_names: Sequence[str] | None = None,
        history: Sequence[str] = (),
    ) -> dict[str, Any]:
        """A contact: `properties`, and (asked in `params`) `propertiesWithHistory` and `associations`."""
        wanted = shown_names if shown_names is not None else names(params) if params is not None else []
        history = history or (names(params, "propertiesWithHistory", ()) if params is not None else [])
        record: dict[str, Any] = {
            "id": self.external_id(person),
            "properties": {name: shown(name, VALUES[name](person)) for name in wanted},
        }
        if history:
            record["propertiesWithHistory"] = {name: _versions(person, name) for name in history}
        record |= {"createdAt": iso(person.created_ms), "updatedAt": iso(person.modified_ms)}
        record["archived"] = person.deleted
        if person.deleted_ms is not None:
            record["archivedAt"] = iso(person.deleted_ms)
        kinds = {k.strip() for v in (params.getlist("associations") if params else []) for k in v.split(",")}
        if "companies" in kinds:
            link = {"id": company_id(person.company), "type": "contact_to_company"}
            record["associations"] = {"companies": {"results": [link]}}
        return record

    def _resolve(self, raw_id: str, id_property: str | None) -> Person | None:
        if id_property == "email":
            by_email = self.people.view("by_email", lambda: {p.email: p for p in self.people.all if not p.purged})
            return by_email.get(raw_id.lower())
        if id_property not in (None, "hs_object_id"):
            raise invalid(f"idProperty {id_property!r} is not a unique property of contacts")
        return self.find(raw_id)


def _checked(request: Request) -> QueryParams:
    """The query of a request on a date-versioned path (`/crm/objects/2026-03/...`) or a v3 one."""
    version = request.path_params.get("version")
    if version is not None and not _VERSION.match(version):
        raise Refusal(404, "OBJECT_NOT_FOUND", f"No API version {version!r}; versions look like 2026-03.")
    return request.query_params


def _archived(params: QueryParams) -> bool:
    return params.get("archived", "false").lower() == "true"


def _versions(person: Person, name: str) -> list[dict[str, Any]]:
    """A property's versions, newest first: its value at creation, then each change."""
    field = FIELD_OF.get(name)
    changes = [c for c in person.history if c.field == field] if field else []
    first = changes[0].old if changes else VALUES[name](person)
    if name == "lastmodifieddate":
        first, created = person.modified_ms, person.modified_ms
    else:
        created = person.created_ms
    versions = [(first, created), *((c.new, c.at_ms) for c in changes)]
    sources = [person.modified_by if name == "lastmodifieddate" else None, *(c.by for c in changes)]
    if name == "lastmodifieddate":
        sources = sources[:1]
    return [
        {"value": shown(name, value) or "", "timestamp": iso(at), **_source(by)}
        for (value, at), by in reversed(list(zip(versions, sources, strict=True)))
        if value is not None
    ]


def _source(by: str | None) -> dict[str, str]:
    """Who wrote a value: a user in the app, or (an API write) the integration and its app id."""
    if by is None:
        return {"sourceType": "CRM_UI", "sourceId": "userId:7788"}
    return {"sourceType": "INTEGRATION", "sourceId": str(APP_ID)}
