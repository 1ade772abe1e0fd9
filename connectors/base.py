"""The connector runtime: one loop that turns a `ConnectorSpec` into pages of raw records.

It builds a request, sends it with an injected `httpx.AsyncClient`, retries what is retryable
(honouring Retry-After), maps the status to the error tree, parses the page and asks the paginator
for the next request. A page's next request is a plain `PageRequest`, so a checkpoint can store it and
a resumed run can start from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import quote

import httpx
import orjson
from pydantic import SecretStr

from connectors.base_types import Page, PageRequest
from connectors.budget import RequestBudget, full_jitter
from connectors.changes import ChangePage
from connectors.egress import EgressPolicy, guarded_transport
from connectors.errors import (
    ConnectorError,
    FatalError,
    MalformedPage,
    OriginRefused,
    PaginationLimit,
    PaginationLoop,
    RequestRejected,
    RetryableError,
    error_for_response,
)
from connectors.oauth import OAuth2Auth
from connectors.origins import OriginBoundAuth, origin_of, show
from connectors.pagination import PageView
from connectors.parameters import resolve_parameters, template_values
from connectors.paths import MISSING, lookup
from connectors.redaction import Redactor, redact, redact_start
from connectors.spec import RESERVED_PARAMETERS, CollectionSpec, ConnectorSpec, RetryPolicy
from connectors.tls import tls_context
from connectors.webhooks import WebhookEvent, WebhookReply, WebhookRequest

__all__ = ["Connector", "Hooks", "Page", "PageGuard", "PageRequest", "to_iso"]

logger = logging.getLogger(__name__)

RetryAfterHook = Callable[[httpx.Response], float | None]
ChangesHook = Callable[["Connector", str, str | None], AsyncIterator[ChangePage]]
VerifyWebhookHook = Callable[[WebhookRequest, str, float], None]
ParseWebhookHook = Callable[[WebhookRequest], list[WebhookEvent]]
HandshakeHook = Callable[[WebhookRequest], WebhookReply | None]
AccountHook = Callable[[WebhookRequest], str | None]
LifecycleHook = Callable[[WebhookRequest], list[tuple[str, str]]]
ClassifyHook = Callable[[httpx.Response], ConnectorError | None]


@dataclass(frozen=True)
class Hooks:
    """The Python an odd API may add to its YAML (`connectors/<app>/hooks.py`); each is optional.

    retry_after        seconds to wait after a 429 the app explains in its body
    classify_error     the error an odd status stands for (Salesforce's 403 REQUEST_LIMIT_EXCEEDED is a
                       rate limit, not an auth error); None: the usual mapping
    changes            an incremental pull the `changes:` YAML cannot describe
    verify_webhook     check a webhook's signature on its raw bytes (raise WebhookRejected)
    parse_webhook      the record changes a verified webhook announces
    webhook_handshake  answer a subscription handshake (Graph's validationToken) instead of parsing
    webhook_account    the account a webhook is about (HubSpot's portalId), matched against a connection's
                       `webhook_account` parameter to route `POST /webhooks/{app}`
    webhook_lifecycle  the subscription lifecycle events a verified webhook carries, as (event, subscription id)
                       pairs (Graph's `missed`, `reauthorizationRequired`, `subscriptionRemoved`)
    """

    retry_after: RetryAfterHook | None = None
    classify_error: ClassifyHook | None = None
    changes: ChangesHook | None = None
    verify_webhook: VerifyWebhookHook | None = None
    parse_webhook: ParseWebhookHook | None = None
    webhook_handshake: HandshakeHook | None = None
    webhook_account: AccountHook | None = None
    webhook_lifecycle: LifecycleHook | None = None


class PageGuard:
    """Stops a listing that loops (the same next page twice) or runs past max_pages."""

    def __init__(self, connector: str, max_pages: int, secrets: Sequence[str] = ()) -> None:
        self._connector = connector
        self._max_pages = max_pages
        self._secrets = secrets
        self._seen: set[tuple[str, str, bytes | None]] = set()

    def check(self, request: PageRequest) -> None:
        key = (request.method, request.url, request.body)
        if key in self._seen:
            raise PaginationLoop(
                f"{self._connector}: the API returned the same next page twice "
                f"({redact(request.url, self._secrets)}); "
                "stopping instead of looping. Check the connector's paginator.",
                connector=self._connector,
            )
        if len(self._seen) >= self._max_pages:
            raise PaginationLimit(
                f"{self._connector}: more than max_pages={self._max_pages} pages; raise max_pages in "
                "connector.yaml if the collection is really this large.",
                connector=self._connector,
            )
        self._seen.add(key)


class Connector:
    """One connection's view of an app: its spec, parameters, credentials and HTTP client."""

    def __init__(
        self,
        spec: ConnectorSpec,
        *,
        parameters: Mapping[str, str] | None = None,
        credentials: Mapping[str, SecretStr] | None = None,
        hooks: Hooks | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
        auth: httpx.Auth | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        """`auth` replaces the spec's `auth` (an OAuth2Auth for a connection made with an OAuth grant).

        Requests go through the egress guard under `egress` (default: no internal address allowed); a
        `transport` given instead stands in for the network (tests, in-process simulators) and is used as is.
        """
        self.spec = spec
        self.egress = egress or EgressPolicy()
        self._retry = retry or spec.retry
        limit = spec.rate_limit
        self.budget = budget or (RequestBudget(limit.requests, limit.per_seconds) if limit else None)
        self._told_to_wait = 0.0  # seconds slept because the app said when to come back (429/503 Retry-After)
        self.name = spec.name
        self.hooks = hooks or Hooks()
        self._parameters = resolve_parameters(
            spec.parameters, parameters or {}, self.egress, connector=spec.name, reserved=RESERVED_PARAMETERS
        )
        self._in_path = template_values(spec.parameters, self._parameters)
        base_url = spec.base_url.format_map(self._in_path)
        self.origins = frozenset(
            origin_of(url) for url in [base_url, *(o.format_map(self._in_path) for o in spec.origins)]
        )
        credentials = credentials or {}
        self._secrets = [value.get_secret_value() for value in credentials.values()]
        if isinstance(auth, OAuth2Auth):
            self._secrets.extend(auth.secrets)
            auth.secrets = self._secrets  # tokens it sends later are redacted from messages too
        self._redactor = Redactor(self._secrets)  # in every encoding, and from this process's log records
        auth = auth if auth is not None else spec.auth.build(credentials, spec.name)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=OriginBoundAuth(auth, self.origins) if auth is not None else None,
            headers={"Accept": "application/json", **spec.headers},
            timeout=spec.timeout_seconds,
            transport=transport if transport is not None else guarded_transport(self.egress),
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
            verify=tls_context(),
        )

    def __repr__(self) -> str:
        return f"Connector({self.name!r}, base_url={self.base_url!r})"

    @property
    def base_url(self) -> str:
        """The API root this connection's requests are relative to (its parameters filled in)."""
        return str(self._client.base_url)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def collection(self, name: str) -> CollectionSpec:
        try:
            return self.spec.collections[name]
        except KeyError:
            raise FatalError(
                f"{self.name} has no collection {name!r}; it has {sorted(self.spec.collections)}",
                connector=self.name,
            ) from None

    def first_request(self, collection: str) -> PageRequest:
        """The request for the first page of a listing."""
        listing = self.collection(collection).list
        body = orjson.dumps(listing.json_body) if listing.json_body is not None else None
        request = self._client.build_request(
            listing.method,
            listing.path.format_map(self._in_path),
            params={k: v.format_map(self._parameters) for k, v in listing.params.items()},
            content=body,
            headers={"Content-Type": "application/json"} if body else None,
        )
        return PageRequest.from_httpx(listing.paginator.first_request(request))

    async def fetch_page(self, collection: str, request: PageRequest, seen: int = 0) -> Page:
        """Read one page; `seen` is how many records earlier pages held (for total-count stop rules)."""
        listing = self.collection(collection).list
        outgoing = self.build(request)  # kept free of auth, which would put a query api key in the next page
        response = await self.send(self.build(request))
        url = redact(request.url, self._secrets)
        body, records = self.parse_page(response, listing.records_path, url, optional=listing.records_optional)
        view = PageView(body=body, records=records, seen=seen + len(records))
        nxt = None if listing.paginator.is_last(view) else listing.paginator.next_request(outgoing, response, view)
        logger.info("%s: %d %s records from %s", self.name, len(records), collection, url)
        return Page(records=records, next=PageRequest.from_httpx(nxt) if nxt else None, url=url)

    async def pages(
        self, collection: str, start: PageRequest | None = None, *, seen: int = 0, prefetch: bool = False
    ) -> AsyncGenerator[Page, None]:
        """Every page of a listing from `start` (a checkpoint's request; by default the first page, and `seen`
        records before it), guarded against loops and runaway lengths. With `prefetch`, the next page is read
        while the caller works on this one; close the iterator (`contextlib.aclosing`) to drop a page read ahead."""
        guard = PageGuard(self.name, self.spec.max_pages, self._secrets)

        async def read(request: PageRequest, seen: int) -> Page:
            guard.check(request)
            return await self.fetch_page(collection, request, seen)

        request: PageRequest | None = start or self.first_request(collection)
        ahead: asyncio.Task[Page] | None = None
        try:
            while request is not None:
                page = await (ahead if ahead is not None else read(request, seen))
                seen += len(page.records)
                request = page.next
                ahead = asyncio.ensure_future(read(request, seen)) if prefetch and request is not None else None
                yield page
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def get(self, collection: str, record_id: str) -> dict[str, Any] | None:
        """One record by id, or None when the app says it does not exist."""
        spec = self.collection(collection).get
        if spec is None:
            raise FatalError(f"{self.name}.{collection} declares no `get`", connector=self.name)
        path = spec.path.format_map({**self._in_path, "id": quote(str(record_id), safe=spec.id_safe)})
        params = {k: v.format_map(self._parameters) for k, v in spec.params.items()}
        with self._valid_url(path):
            request = self._client.build_request("GET", path, params=params)
        response = await self.send(request, spec.not_found)
        if response.status_code in spec.not_found:
            return None
        record = lookup(self.read_json(response, redact(str(response.request.url), self._secrets)), spec.record_path)
        if not isinstance(record, dict):
            raise MalformedPage(
                f"{self.name}: {collection} record {record_id} has no object at {spec.record_path!r}",
                connector=self.name,
            )
        return record

    def record_id(self, collection: str, record: Mapping[str, Any]) -> str:
        value = lookup(record, self.collection(collection).id_path, None)
        if value in (None, MISSING, ""):
            raise MalformedPage(
                f"{self.name}: a {collection} record has no id at {self.collection(collection).id_path!r}",
                connector=self.name,
            )
        return str(value)

    def updated_at(self, collection: str, record: Mapping[str, Any]) -> str | None:
        path = self.collection(collection).updated_at_path
        return to_iso(lookup(record, path, None)) if path else None

    def request(
        self, method: str, path: str, params: Mapping[str, str] | None = None, json: Any = None
    ) -> httpx.Request:
        """A request to this app; `{parameter}` placeholders in path and params are filled in."""
        with self._valid_url(path):
            return self._client.build_request(
                method,
                path.format_map(self._in_path),
                params={k: v.format_map(self._parameters) for k, v in (params or {}).items()},
                content=orjson.dumps(json) if json is not None else None,
                headers={"Content-Type": "application/json"} if json is not None else None,
            )

    def write_request(
        self,
        method: str,
        path: str,
        *,
        path_values: Mapping[str, str],
        params: Mapping[str, str],
        headers: Mapping[str, str],
        json: Any = None,
    ) -> httpx.Request:
        """A write to this app: `{parameter}` and `path_values` (the record id, quoted) fill the path; params and
        headers go as given (they hold tenant data, which must not be read as a template)."""
        with self._valid_url(path):
            return self._client.build_request(
                method,
                path.format_map({**self._in_path, **path_values}),
                params=dict(params),
                content=orjson.dumps(json) if json is not None else None,
                headers={**({"Content-Type": "application/json"} if json is not None else {}), **headers},
            )

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    def parameter(self, name: str) -> str | None:
        """A connection parameter's value (None when unset)."""
        return self._parameters.get(name)

    async def attempt(
        self, request: httpx.Request, accept: list[int] | tuple[int, ...] | frozenset[int] = ()
    ) -> httpx.Response | ConnectorError:
        """One try of `request` (origin check, budget, error mapping); a response whose status is in `accept`
        comes back as it is. The writes' retry loop, which must not repeat a create blindly, uses it."""
        return await self._attempt(request, tuple(accept))

    def redact(self, text: str) -> str:
        """Text with this connection's credentials removed, in every encoding, for messages and logs."""
        return self._redactor(text)

    @property
    def seconds_rate_limited(self) -> float:
        """Seconds spent waiting on the app's rate limit: the request budget's waits and the Retry-After waits."""
        return (self.budget.waited if self.budget else 0.0) + self._told_to_wait

    def build(self, request: PageRequest) -> httpx.Request:
        headers = {"Content-Type": "application/json"} if request.body else None
        with self._valid_url(request.url):
            return self._client.build_request(request.method, request.url, content=request.body, headers=headers)

    @contextmanager
    def _valid_url(self, url: str) -> Iterator[None]:
        """httpx.InvalidURL (an id of 100,000 characters, a control character) becomes our RequestRejected."""
        try:
            yield
        except httpx.InvalidURL as exc:
            raise RequestRejected(
                f"{self.name}: cannot build a request for {self.redact(url)[:200]!r}: {exc}; "
                "the value that went into the URL is not valid for this API",
                connector=self.name,
            ) from None

    async def send(self, request: httpx.Request, accept: list[int] | tuple[int, ...] = ()) -> httpx.Response:
        policy = self._retry
        for attempt in range(1, policy.attempts + 1):
            error = await self._attempt(request, accept)
            if isinstance(error, httpx.Response):
                return error
            if not isinstance(error, RetryableError) or attempt == policy.attempts:
                raise error
            wait = error.retry_after
            if wait is None:
                wait = full_jitter(attempt, policy.backoff_seconds, policy.max_backoff_seconds)
            if wait > policy.max_wait_seconds:
                raise error
            if error.retry_after is not None:
                self._told_to_wait += wait
            logger.warning("%s (attempt %d of %d, waiting %.2fs)", error, attempt, policy.attempts, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, request: httpx.Request, accept: list[int] | tuple[int, ...]
    ) -> httpx.Response | ConnectorError:
        url = redact(str(request.url), self._secrets)
        if origin_of(request.url) not in self.origins and self.spec.foreign_links == "refuse":
            return self._foreign(request)
        if self.budget is not None:
            await self.budget.acquire()
        try:
            response = await self._client.send(request)
        except ConnectorError as exc:  # from the auth: a token endpoint that failed or refused a refresh
            return exc
        except httpx.TimeoutException:
            return RetryableError(
                f"{self.name}: {request.method} {url} timed out after {self.spec.timeout_seconds}s",
                connector=self.name,
                url=url,
            )
        except httpx.TransportError as exc:
            return RetryableError(
                f"{self.name}: cannot reach {url} ({type(exc).__name__}: {redact(str(exc), self._secrets)}); "
                "is the app up and the base URL right?",
                connector=self.name,
                url=url,
            )
        if response.status_code in accept:
            return response
        if response.status_code >= 400 and self.hooks.classify_error is not None:
            classified = self.hooks.classify_error(response)
            if classified is not None:
                return classified
        hint = self.hooks.retry_after(response) if self.hooks.retry_after and response.status_code == 429 else None
        error = error_for_response(response, connector=self.name, secrets=self._secrets, retry_after=hint)
        return response if error is None else error

    def _foreign(self, request: httpx.Request) -> OriginRefused:
        origin = show(origin_of(request.url))
        return OriginRefused(
            f"{self.name}: refused a request to {origin}: this connection's credentials go only to "
            f"{', '.join(sorted(show(o) for o in self.origins))} (the rule: a connector declares its origins). "
            "connector.yaml may list more `origins:`, or follow such links bare (`foreign_links: without_credentials`)",
            connector=self.name,
            url=origin,
        )

    def parse_page(
        self, response: httpx.Response, records_path: str, url: str, *, optional: bool = False
    ) -> tuple[Any, list[dict[str, Any]]]:
        """The parsed body and its records; `optional`: an absent records path means no records."""
        body = self.read_json(response, url)
        records = lookup(body, records_path)
        if records is MISSING and optional and isinstance(body, dict):
            return body, []
        if records is MISSING:
            keys = sorted(body)[:10] if isinstance(body, dict) else type(body).__name__
            raise MalformedPage(
                f"{self.name}: the page {url} has no records at {records_path!r} (found {keys}); "
                "check records_path in connector.yaml",
                connector=self.name,
                url=url,
            )
        if not isinstance(records, list) or any(not isinstance(r, dict) for r in records):
            raise MalformedPage(
                f"{self.name}: the page {url} holds {type(records).__name__} at {records_path!r}, "
                "not a list of objects",
                connector=self.name,
                url=url,
            )
        return body, records

    def read_json(self, response: httpx.Response, url: str) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            start = redact_start(response.content[:4096].decode(errors="replace"), self._secrets, 80)
            raise MalformedPage(
                f"{self.name}: the page {url} is not JSON "
                f"(content-type {response.headers.get('content-type')!r}, starts with {start!r})",
                connector=self.name,
                url=url,
            ) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_FROM, _MS_UNTIL = 100_000_000_000, 253_402_300_800_000  # epoch milliseconds of 1973-03-03 and 10000-01-01


def to_iso(value: Any) -> str | None:
    """An ISO-8601 UTC string from an ISO string or epoch seconds/milliseconds; a number no date can hold (an
    app's junk) comes back as text rather than failing the page."""
    if value is None or value is MISSING or value == "":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if type(value) is int and _MS_FROM < value < _MS_UNTIL:  # epoch milliseconds (most apps): the C clock formats
        seconds, millis = divmod(value, 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    if not isinstance(value, int | float):
        return str(value)
    try:  # epoch + timedelta: exact for integer milliseconds
        if isinstance(value, int) and value > 100_000_000_000:
            moment = _EPOCH + timedelta(milliseconds=value)
        else:
            moment = _EPOCH + timedelta(seconds=value / 1000 if value > 1e11 else value)
    except (OverflowError, ValueError):
        return str(value)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
