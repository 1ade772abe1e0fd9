"""Delivery to the team's app, exactly as DESIGN.md's contract says, and to a retry policy measured in hours.

`POST {url}{path}` with a JSON batch of one connection's events, signed per Standard Webhooks (every
active secret signs), with the destination's bearer or OAuth2 token when it has one.

* 2xx: the events leave the outbox.
* 429/503 with Retry-After: wait that long (in the run when it is short, else the batch is deferred).
* Other 5xx, timeouts, connection errors: a few tries in the run with full-jitter backoff, then the batch
  is deferred: `next_attempt_at` = now + retry_base + uniform(0, min(retry_cap, retry_base * 2**attempts))
  (at most retry_cap), and the
  scheduled `deliver-outbox` deployment sends it later. Failures feed the destination's circuit breaker
  (inlet.breaker); while it is open the connection's deliveries are parked, and a probe tests the app.
* A batch older than `max_age_seconds` that still fails becomes a dead letter with the last response.
* 400/409/413/422: the app refused some record. When its body names the events
  (`{"rejected": [{"event_id": "evt_..."}]}`) those become dead letters and the rest is sent again;
  otherwise the batch is bisected until the poisoned event is alone.
* 401/403: the destination is misconfigured (a wrong signing secret or app credentials), not the events at
  fault: the breaker opens at once, the events stay pending, and the run fails naming the cause and the fix.
  Once the secret or credentials change, the next drain tries them at once (the breaker remembers a digest of
  the refused ones). Other 4xx (404 ...): the whole batch becomes a dead letter. `inlet deliveries replay`
  sends dead letters again.

Order: a connection's events leave in outbox order; nothing overtakes a deferred event (outbox.pending_batch),
and a dead letter holds back the later events of its record (outbox.park_records).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import ParamSpec, TypeVar

import anyio
import httpx
import orjson
from pydantic import ConfigDict, Field, SecretStr

from connectors.budget import RequestBudget
from connectors.errors import parse_retry_after
from inlet.delivery import breaker
from inlet.delivery.signing import sign_headers
from inlet.errors import ConfigError
from inlet.settings import DeliveryPolicy, Settings
from inlet.store import PendingEvent

__all__ = ["Destination", "DrainResult", "encode_batch", "shown_url"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def shown_url(url: str) -> str:
    """The URL without what may be a credential: `user:password@` and the query string."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


class Destination(DeliveryPolicy):
    """The team's app as one tenant sees it, with the retry policy that applies to it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    url: str
    path: str
    secrets: tuple[SecretStr, ...]
    auth: httpx.Auth | None = Field(default=None, exclude=True)

    def __repr__(self) -> str:
        return f"Destination(url={shown_url(self.url)!r}, path={self.path!r}, secrets=***)"

    @property
    def key(self) -> str:
        """What the breaker and the limits are keyed by, and what status shows: the endpoint, never a secret."""
        return shown_url(self.url) + self.path

    @property
    def fingerprint(self) -> str:
        """A one-way digest of the signing secrets and the app credentials: the breaker remembers which ones the
        app refused (401/403) and lets a changed set through at once. A digest of high-entropy secrets, never
        shown; it tells nothing of them."""
        material = getattr(self.auth, "material", None)
        parts = [s.get_secret_value() for s in self.secrets] + [material() if callable(material) else ""]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]

    @property
    def lease_seconds(self) -> float:
        """How long a drain's claim on a batch holds: at least two of the app's timeouts."""
        return max(self.claim_seconds, 2 * self.timeout_seconds)

    @property
    def breaker(self) -> breaker.BreakerPolicy:
        return breaker.BreakerPolicy(self.breaker_threshold, self.breaker_cooldown_seconds, self.retry_cap_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> Destination:
        from inlet.delivery.auth import BearerToken, ClientCredentials

        secret = settings.destination_secret()
        if secret is None:
            raise ConfigError(
                "no signing secret for the destination: set INLET_DESTINATION__SECRET or run `inlet init`"
            )
        previous = settings.destination_previous_secret()
        d = settings.destination
        policy = d.model_dump(include=set(DeliveryPolicy.model_fields))
        auth: httpx.Auth | None = BearerToken(d.bearer_token) if d.bearer_token else None
        if d.oauth_token_url and d.oauth_client_id and d.oauth_client_secret:
            auth = ClientCredentials(d.oauth_token_url, d.oauth_client_id, d.oauth_client_secret, d.oauth_scope)
        return cls(
            url=settings.destination_url,
            path=d.path,
            secrets=(secret, previous) if previous else (secret,),
            auth=auth,
            **policy,
        )


@dataclass
class DrainResult:
    """What one drain of a connection's outbox did."""

    delivered: int = 0
    dead: int = 0
    batches: int = 0
    attempts: int = 0
    pending_left: bool = False
    parked: bool = False  # the destination's breaker is open
    busy_elsewhere: bool = False  # another drain was sending the connection's events; this one left them to it
    refused: bool = False  # the app answered 401/403: its secret or credentials are wrong (see last_error)
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    dead_errors: list[str] = field(default_factory=list)
    seconds_posting: float = 0.0

    def add(self, other: DrainResult) -> None:
        self.seconds_posting += other.seconds_posting
        self.delivered += other.delivered
        self.dead += other.dead
        self.batches += other.batches
        self.attempts += other.attempts
        self.pending_left = other.pending_left
        self.parked = other.parked
        self.busy_elsewhere = self.busy_elsewhere or other.busy_elsewhere
        self.refused = self.refused or other.refused
        self.next_attempt_at = other.next_attempt_at
        self.last_error = other.last_error or self.last_error
        self.dead_errors.extend(other.dead_errors)

    def failure(self) -> str | None:
        """Why the run must fail, in the operator's words with the fix; None when everything went out."""
        if self.refused:
            return f"the team's app refused the deliveries: {self.last_error}"
        if self.pending_left:
            return (
                f"the team's app did not take the events ({self.last_error}); they wait in the outbox and are sent "
                "by the next run or `inlet deliver --tenant TENANT --connection CONNECTION`"
            )
        return None


def encode_batch(events: list[PendingEvent], app_ids: Mapping[str, str] | None = None) -> bytes:
    """The JSON body of one delivery; stored records are embedded without re-parsing. A record linked to a
    record of the app (bi-directional sync: the app created it, or named it in a push) carries its `app_id`."""
    first = events[0]
    app_ids = app_ids or {}
    return orjson.dumps(
        {
            "tenant": first.tenant_id,
            "connection": first.connection_id,
            "data_source": first.data_source,
            "events": [
                {
                    "event_id": e.event_id,
                    "type": e.type,
                    "external_id": e.external_id,
                    "record": orjson.Fragment(e.record) if e.record is not None else None,
                    "source_updated_at": e.source_updated_at,
                    "idempotency_key": e.idempotency_key,
                    **({"app_id": app_ids[e.external_id]} if e.external_id in app_ids else {}),
                }
                for e in events
            ],
        }
    )


def aware(when: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; the store writes UTC only."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def age(event: PendingEvent, now: datetime) -> timedelta:
    return now - aware(event.created_at)


def message_id(events: list[PendingEvent]) -> str:
    """The webhook-id: the same for every retry of the same events."""
    digest = hashlib.sha256(f"{events[0].event_id}:{events[-1].event_id}:{len(events)}".encode()).hexdigest()
    return "msg_" + digest[:24]


def signed_headers(destination: Destination, events: list[PendingEvent], body: bytes) -> dict[str, str]:
    secrets = [s.get_secret_value() for s in destination.secrets]
    headers = sign_headers(secrets, msg_id=message_id(events), timestamp=int(time.time()), body=body)
    headers["content-type"] = "application/json"
    return headers


_LIMITS: dict[tuple[str, int], tuple[asyncio.Semaphore, RequestBudget]] = {}


def limits(destination: Destination) -> tuple[asyncio.Semaphore, RequestBudget]:
    """This process's concurrency and rate budget for one destination (per event loop: asyncio primitives
    belong to one). Across processes, the deliver-outbox flow holds a Prefect concurrency limit."""
    key = (destination.key, id(asyncio.get_running_loop()))
    if key not in _LIMITS:
        requests = max(1, round(destination.rate_per_second))
        budget = RequestBudget(requests, requests / destination.rate_per_second)
        _LIMITS[key] = (asyncio.Semaphore(destination.concurrency), budget)
    return _LIMITS[key]


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking store call off the event loop."""
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


def retry_after(response: httpx.Response) -> float | None:
    if response.status_code in (429, 503):
        return parse_retry_after(response.headers.get("Retry-After"))
    return None
