"""Delivery to the team's app, exactly as DESIGN.md's contract says.

`POST {url}{path}` with a JSON batch of one connection's events, signed per Standard Webhooks.
2xx: the events leave the outbox. 429/503 with Retry-After: wait that long. Other 5xx, timeouts,
connection errors: exponential backoff with full jitter. Other 4xx: the batch becomes a dead letter
with the app's answer. A batch that exhausts its attempts stays pending, and the drain stops there,
so no later event of the connection overtakes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import anyio
import httpx
import orjson
from pydantic import SecretStr
from sqlalchemy import Engine

from connectors.errors import parse_retry_after
from inlet import outbox
from inlet.errors import ConfigError
from inlet.outbox import PendingEvent
from inlet.settings import Settings
from inlet.signing import sign_headers
from inlet.store import utcnow

__all__ = ["Destination", "DrainResult", "drain", "encode_batch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destination:
    """The team's app as one tenant sees it."""

    url: str
    path: str
    secrets: tuple[SecretStr, ...]
    batch_size: int = 500
    timeout_seconds: float = 30.0
    max_attempts: int = 8
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0

    def __repr__(self) -> str:
        return f"Destination(url={self.url!r}, path={self.path!r}, secrets=***)"

    @classmethod
    def from_settings(cls, settings: Settings) -> Destination:
        secret = settings.destination_secret()
        if secret is None:
            raise ConfigError(
                "no signing secret for the destination: set INLET_DESTINATION__SECRET or run `inlet init`"
            )
        d = settings.destination
        return cls(
            url=settings.destination_url,
            path=d.path,
            secrets=(secret,),
            batch_size=d.batch_size,
            timeout_seconds=d.timeout_seconds,
            max_attempts=d.max_attempts,
            backoff_seconds=d.backoff_seconds,
            max_backoff_seconds=d.max_backoff_seconds,
        )


@dataclass
class DrainResult:
    """What one drain of a connection's outbox did."""

    delivered: int = 0
    dead: int = 0
    batches: int = 0
    attempts: int = 0
    pending_left: bool = False
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
        self.last_error = other.last_error or self.last_error
        self.dead_errors.extend(other.dead_errors)


def encode_batch(events: list[PendingEvent]) -> bytes:
    """The JSON body of one delivery; stored records are embedded without re-parsing."""
    first = events[0]
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
                }
                for e in events
            ],
        }
    )


async def drain(
    engine: Engine,
    connection_id: str,
    destination: Destination,
    client: httpx.AsyncClient,
    *,
    sleep: Callable[[float], object] = asyncio.sleep,
) -> DrainResult:
    """Send every due pending event of one connection, batch by batch, until none is left or one fails."""
    result = DrainResult()
    while True:
        batch = await anyio.to_thread.run_sync(outbox.pending_batch, engine, connection_id, destination.batch_size)
        if not batch:
            # Events deferred by an earlier failure are not due yet, but they are still left.
            if (when := await anyio.to_thread.run_sync(outbox.next_attempt, engine, connection_id)) is not None:
                result.pending_left = True
                result.last_error = result.last_error or f"deferred events wait for their next attempt at {when} UTC"
            return result
        ids = [e.id for e in batch]
        started = time.perf_counter()
        outcome = await _send(client, destination, batch, sleep)
        result.seconds_posting += time.perf_counter() - started
        result.batches += 1
        result.attempts += outcome.attempts
        if outcome.status == "ok":
            await anyio.to_thread.run_sync(outbox.ack, engine, ids)
            result.delivered += len(ids)
        elif outcome.status == "rejected":
            await anyio.to_thread.run_sync(outbox.park, engine, ids, outcome.error)
            result.dead += len(ids)
            result.dead_errors.append(outcome.error)
        else:
            retry_at = utcnow() + timedelta(seconds=min(destination.max_backoff_seconds, 60.0))
            await anyio.to_thread.run_sync(partial(outbox.defer, engine, ids, outcome.error, next_attempt_at=retry_at))
            result.pending_left = True
            result.last_error = outcome.error
            return result


@dataclass(frozen=True)
class _Outcome:
    status: str  # ok, rejected, failed
    attempts: int
    error: str = ""


async def _send(
    client: httpx.AsyncClient, destination: Destination, batch: list[PendingEvent], sleep: Callable[[float], object]
) -> _Outcome:
    body = encode_batch(batch)
    msg_id = "msg_" + hashlib.sha256(f"{batch[0].event_id}:{batch[-1].event_id}:{len(batch)}".encode()).hexdigest()[:24]
    url = destination.url + destination.path
    secrets = [s.get_secret_value() for s in destination.secrets]
    error = ""
    for attempt in range(1, destination.max_attempts + 1):
        headers = sign_headers(secrets, msg_id=msg_id, timestamp=int(time.time()), body=body)
        headers["content-type"] = "application/json"
        wait: float | None = None
        try:
            response = await client.post(url, content=body, headers=headers, timeout=destination.timeout_seconds)
        except httpx.TransportError as exc:
            error = f"{url}: {type(exc).__name__}: {exc}; is the app up?"
        else:
            if response.is_success:
                return _Outcome("ok", attempt)
            error = f"{url} answered {response.status_code}: {response.text[:1000]}"
            if response.status_code in (429, 503):
                wait = parse_retry_after(response.headers.get("Retry-After"))
            elif 400 <= response.status_code < 500:
                return _Outcome("rejected", attempt, error)
        if attempt == destination.max_attempts:
            break
        if wait is None:
            cap = min(destination.max_backoff_seconds, destination.backoff_seconds * 2**attempt)
            wait = random.uniform(0, cap)
        logger.warning(
            "delivery of %d events failed (%s); attempt %d, retrying in %.2fs", len(batch), error, attempt, wait
        )
        await _maybe_await(sleep(wait))
    return _Outcome("failed", destination.max_attempts, error)


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value
