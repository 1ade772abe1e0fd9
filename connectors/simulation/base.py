"""`SimulatorBase`: what every app simulator shares; the app's module keeps only its wire format.

A simulator (`connectors/<app>/simulator/`) subclasses `SimulatorBase`, renders `Person`s in its API's
shape and answers its API's URLs. The base owns the rest: seeding and mutations, the clock, the
admission of every API request (counting, credentials, OAuth scopes, authorization, injected faults,
slowness, rate limits), refusals in the app's error format, webhook deliveries (`Outbox`), and the
`/_sim/*` control endpoints:

    sim = make_simulator(records=250, seed=0)       # module-level factory of each simulator module
    sim.create(2); sim.update(3); sim.delete(["..."]); sim.purge(1); sim.restore(["..."])
    sim.inject(status_429=2, retry_after=0.01, expire_tokens=True, repeat_token=1)
    sim.advance(8 * 86_400)                          # the simulated clock: tokens age, retries fall due
    sent = await sim.deliver(client)                 # webhooks that are due, through any httpx client
    parameters, credentials = sim.connection("http://sim")

A subclass declares its endpoints with `self.route(path, handler, kind)`, so each handler runs only for
an admitted request, and raises `Refusal` for the app's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.simulation.answers import Refusal, json_response
from connectors.simulation.clock import SimClock
from connectors.simulation.control import Controllable, control_routes
from connectors.simulation.faults import Faults
from connectors.simulation.limits import DailyBudget, Limit, RollingWindow
from connectors.simulation.oauth import OAuthQuirks, OAuthServer
from connectors.simulation.people import People, Person
from connectors.simulation.webhooks import Outbox, RetryPolicy, Sent

__all__ = ["Handler", "SimulatorBase"]

Handler = Callable[[Request], Awaitable[Response]]
LimitT = TypeVar("LimitT", bound=Limit)


class SimulatorBase(Controllable):
    """Seeding, mutations, the clock, admission, faults, counters and `/_sim/*` for one app's simulator.

    Subclasses set `connector` and implement `external_id`, `api_routes`, `unauthenticated`, `refusal` and
    `throttled`; they may add `charges` (rate limits), `authorize`, `insufficient_scope`, `headers` and
    `changed` (to queue webhooks), and set the class attributes below.
    """

    connector: ClassVar[str]
    tokens_expire: ClassVar[bool] = True  # False where the incremental token is a timestamp the app always accepts
    oauth_quirks: ClassVar[OAuthQuirks | None] = None  # the app's OAuth endpoints, served as `self.oauth`
    counters: ClassVar[tuple[str, ...]] = ()  # request kinds that `stats` shows from zero
    fault_limit: ClassVar[str] = "rate"  # the limit an injected 429 imitates, as `throttled` names it
    server_error: ClassVar[tuple[int, str, str]] = (500, "INTERNAL_ERROR", "internal error")  # an injected 5xx
    malformed_body: ClassVar[bytes] = b'{"results": [{"id": "'  # what a proxy cutting a body leaves behind
    media_type: ClassVar[str] = "application/json"
    required_scopes: ClassVar[frozenset[str]] = frozenset()  # an OAuth token needs one of these (empty: any)
    webhook_policy: ClassVar[RetryPolicy | None] = None  # how the app retries webhooks; None: it sends none

    def __init__(
        self, records: int = 100, seed: int | str = 0, *, token: str = "sim-token", clock: SimClock | None = None
    ) -> None:
        self.token = token
        self.clock = clock or SimClock()
        self.limits: list[Limit] = []  # every rate limit of the app, cleared by `reset`
        self.people = People(records, seed, self.clock)
        self.lock = threading.RLock()
        self.faults = Faults()
        self.counts: dict[str, int] = {}
        self._issued = self._expired_through = 0  # incremental tokens handed out; those up to the mark expire
        self._by_id: dict[str, Person] = {self.external_id(p): p for p in self.people.all}
        self.oauth = OAuthServer(self.oauth_quirks, clock=self.clock.time) if self.oauth_quirks else None
        self.outbox = Outbox(self.clock, self.webhook_policy) if self.webhook_policy else None
        self.outbound: httpx.AsyncBaseTransport | None = None  # how webhooks leave; None: the network
        self.deliver_every = 0.0  # seconds between webhook sends while served (0: only on /_sim/webhooks/deliver)
        routes = [*self.api_routes(), *control_routes(self), *(self.oauth.routes() if self.oauth else [])]
        if self.outbox is not None:
            routes += [
                Route("/_sim/webhooks", self._webhook_log, methods=["GET"]),
                Route("/_sim/webhooks/deliver", self._deliver_now, methods=["POST"]),
            ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)
        self.app.add_exception_handler(Refusal, self._refused)
        SimulatorBase.reset(self)

    # -- what each app provides ---------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        raise NotImplementedError

    def api_routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        """The app's 401 for missing (`missing`) or refused credentials."""
        raise NotImplementedError

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        """A `Refusal` in the app's error format, with the app's headers."""
        raise NotImplementedError

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        """The app's answer when `limit` (or an injected 429, as `fault_limit`) is spent for `wait` seconds."""
        raise NotImplementedError

    def charges(self, request: Request, kind: str) -> list[tuple[Limit, int]]:
        """The rate limits this request spends, and how many units of each."""
        return []

    def authorize(self, request: Request, kind: str) -> Refusal | None:
        """After the credentials: a refusal when this account may not do `kind` (a role, a plan, a switch)."""
        return None

    def headers(self, request: Request | None) -> dict[str, str]:
        """Headers on every answer of the app (rate-limit counters, a Date, request ids)."""
        return {}

    def presented_token(self, request: Request) -> str | None:
        """The credential the request carries; by default a bearer token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, SecretStr]]:
        """Connection parameters and credentials that reach this simulator at `base_url`."""
        return {"base_url": base_url}, {"token": SecretStr(self.token)}

    def bad_credentials(self) -> dict[str, SecretStr]:
        """Credentials this simulator refuses."""
        return {name: SecretStr("wrong-" + value.get_secret_value()) for name, value in self.connection("")[1].items()}

    # -- serving ------------------------------------------------------------------------------------

    def route(self, path: str, handler: Handler, kind: str, methods: Sequence[str] = ("GET",)) -> Route:
        """A route whose handler runs only once `admit` let the request in."""

        async def admitted(request: Request) -> Response:
            early = await self.admit(request, kind)
            return early if early is not None else await handler(request)

        return Route(path, admitted, methods=list(methods), name=f"{kind} {path}")

    def answer(
        self, body: Any, status: int = 200, request: Request | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """A JSON answer with the app's headers (and `headers`)."""
        return json_response(body, status, {**self.headers(request), **(headers or {})}, self.media_type)

    def rolling_window(self, name: str, seconds: float, capacity: int | None) -> RollingWindow:
        """A rate limit of `capacity` units per sliding `seconds` on this simulator's clock (None: unlimited)."""
        return self.limited(RollingWindow(name, seconds, capacity, self.clock))

    def daily_budget(self, name: str, capacity: int, utc_offset: float = 0.0) -> DailyBudget:
        """A rate limit of `capacity` units per simulated day (in a zone `utc_offset` seconds east of UTC)."""
        return self.limited(DailyBudget(name, capacity, self.clock, utc_offset))

    def limited(self, limit: LimitT) -> LimitT:
        """Keep `limit` among the app's limits, which `reset` clears."""
        self.limits.append(limit)
        return limit

    async def admit(self, request: Request, kind: str = "api") -> Response | None:
        """Count the request, then answer it early: bad credentials, no authorization, a fault or a spent limit."""
        with self.lock:
            self.counts["requests"] += 1
            self.counts[kind] = self.counts.get(kind, 0) + 1
            early = self._credentials(request, kind)
            if early is None and (fault := self.faults.take()) is not None:
                early = self.fault_response(request, fault)
            delay = self.faults.slow_seconds
        if early is None and delay > 0:
            await asyncio.sleep(delay)
        if early is None:
            with self.lock:
                early = self._spend(request, kind)
        return early

    def fault_response(self, request: Request | None, fault: str) -> Response:
        """The app's own answer for an injected `status_429`, `status_500` or `malformed` fault."""
        if fault == "status_429":
            return self.throttled(request, self.fault_limit, self.faults.retry_after)
        if fault == "status_500":
            return self.refusal(request, Refusal(*self.server_error))
        return Response(self.malformed_body, media_type=self.media_type, headers=self.headers(request))

    # -- the control API --------------------------------------------------------------------------

    def inject(self, **faults: Any) -> None:
        """Add faults (see `Faults`); numbers add up, flags and slow_seconds replace; ValueError when bad.

        `expire_tokens=True` expires every incremental token handed out so far (see `issue_token`)."""
        with self.lock:
            self.faults.add(**faults)
            if faults.get("expire_tokens"):
                self._expired_through = self._issued

    def stats(self) -> dict[str, int]:
        with self.lock:
            live = len(self.people.live())
            return {**self.counts, "records": live, "deleted": len(self.people.all) - live}

    def reset(self) -> None:
        """Clear faults, counters and rate-limit usage; the data stays."""
        with self.lock:
            self.faults = Faults()
            self.counts = {"requests": 0, **dict.fromkeys(self.counters, 0)}
            for limit in self.limits:
                limit.clear()

    def take_repeat(self) -> bool:
        """True when this page must hand out the same next-page token again (a looping API)."""
        with self.lock:
            if self.faults.repeat_token > 0:
                self.faults.repeat_token -= 1
                return True
            return False

    def issue_token(self) -> int:
        """The issue number of an incremental token being handed out now."""
        self._issued += 1
        return self._issued

    def token_expired(self, number: int) -> bool:
        """True for a token issued before an `expire_tokens` fault."""
        return self.faults.expire_tokens and number <= self._expired_through

    def webhook_client(self) -> httpx.AsyncClient:
        """The client webhooks and handshakes leave through (`outbound`, or the network)."""
        return httpx.AsyncClient(transport=self.outbound, timeout=10.0)

    async def deliver(self, client: httpx.AsyncClient | None = None) -> list[Sent]:
        """Send the webhook deliveries that are due (through `client`, or `webhook_client()`)."""
        if self.outbox is None or not any(d.due <= self.clock.time() for d in self.outbox.pending()):
            return []
        if client is not None:
            return await self.outbox.deliver(client)
        async with self.webhook_client() as own:
            return await self.outbox.deliver(own)

    def insufficient_scope(self, request: Request) -> Refusal:
        """The app's 403 for an OAuth token granted none of `required_scopes`."""
        return Refusal(403, "insufficient_scope", "the access token lacks the scope this call needs")

    # -- parts ----------------------------------------------------------------------------------------

    def _credentials(self, request: Request, kind: str) -> Response | None:
        authorization = request.headers.get("authorization", "")
        if self.oauth is None or not self.oauth.accepts(authorization):
            if (early := self.authenticate(request)) is not None:
                return early
            refused = self.authorize(request, kind)
        elif self.required_scopes and not _scopes(self.oauth.scope_of(authorization)) & self.required_scopes:
            refused = self.insufficient_scope(request)
        else:
            refused = self.authorize(request, kind)
        return None if refused is None else self.refusal(request, refused)

    def authenticate(self, request: Request) -> Response | None:
        """None when the request carries this simulator's credentials, else the app's 401."""
        given = self.presented_token(request)
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        return self.refusal(request, self.unauthenticated(request, missing=given is None))

    def _spend(self, request: Request, kind: str) -> Response | None:
        """Spend every limit this request is charged, or none of them when one is spent."""
        charges, now = self.charges(request, kind), self.clock.monotonic()
        for limit, units in charges:
            if (wait := limit.wait(units, now)) is not None:
                return self.throttled(request, limit.name, max(1, math.ceil(wait)))
        for limit, units in charges:
            limit.spend(units, now)
        return None

    async def _refused(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return self.refusal(request, exc)

    async def _webhook_log(self, request: Request) -> Response:
        assert self.outbox is not None
        sent = [{k: v for k, v in asdict(s).items() if k != "body"} for s in self.outbox.log]
        return json_response({"pending": len(self.outbox.pending()), "sent": sent})

    async def _deliver_now(self, request: Request) -> Response:
        sent = await self.deliver()
        return json_response([{k: v for k, v in asdict(s).items() if k != "body"} for s in sent])

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """While served, send due webhooks every `deliver_every` seconds (when set)."""
        task = asyncio.create_task(self._deliver_loop()) if self.outbox and self.deliver_every > 0 else None
        yield
        if task is not None:
            task.cancel()

    async def _deliver_loop(self) -> None:
        while True:
            await asyncio.sleep(self.deliver_every)
            await self.deliver()


def _scopes(scope: str) -> set[str]:
    """Scope names as granted, and their last path segment (`https://graph.microsoft.com/User.Read.All`)."""
    return {name for item in scope.split() for name in (item, item.rsplit("/", 1)[-1])}
