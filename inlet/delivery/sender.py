"""One drain of a connection's outbox: batches, in-run retries, bisection, deferral and the breaker (see
inlet.delivery.policy for the policy)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
from sqlalchemy import Engine

from connectors import full_jitter
from inlet.delivery import breaker
from inlet.delivery.handoff import Handoff
from inlet.delivery.policy import (
    Destination,
    DrainResult,
    age,
    encode_batch,
    in_thread,
    limits,
    retry_after,
    signed_headers,
)
from inlet.errors import ConfigError
from inlet.store import PendingEvent, linked_app_ids, outbox, utcnow

__all__ = ["Sender", "drain"]

logger = logging.getLogger("inlet.delivery")

_BISECT = frozenset({400, 409, 413, 422})  # answers about the batch's content: some record is at fault
_REFUSED = frozenset({401, 403})  # answers about inlet's credentials: the destination is misconfigured
REFUSAL_FIX = (
    "the app refused inlet's signature or credentials: give the app the destination's current signing secret "
    "(the default one is in INLET_HOME/destination.secret or INLET_DESTINATION__SECRET; a tenant's own is set "
    "with `inlet deliveries destination set --tenant TENANT`), or fix the app credentials set with that command; "
    "the events stay pending and `inlet deliver --tenant TENANT --connection CONNECTION` sends them once the app "
    "accepts"
)


@dataclass
class _Unavailable(Exception):
    """The app did not answer usefully after the run's tries; the events wait for a later attempt."""

    events: list[PendingEvent]
    error: str
    not_before: datetime | None = None
    breaker_open: bool = False
    refused: bool = False  # a 401/403: a misconfiguration, never a reason to give up on the events


class Sender:
    """Sends one connection's due events to one destination and books every outcome in the outbox."""

    def __init__(
        self,
        engine: Engine,
        destination: Destination,
        client: httpx.AsyncClient,
        sleep: Callable[[float], object],
        clock: Callable[[], datetime],
    ) -> None:
        self.engine, self.destination, self.client = engine, destination, client
        self.sleep, self.clock = sleep, clock
        self.result = DrainResult()
        self.parked_ids: set[int] = set()
        self.breaker_clean: bool | None = None  # closed with no failures: a success need not write
        self.owner = outbox.claimant()
        self.lease = destination.lease_seconds
        self.claimed_at = 0.0
        self.wait_for_others = True
        self.handoff: Handoff | None = None  # the import's writer hands its events over in memory
        self.final = True  # the writer is done: once memory is empty, read what the outbox still holds

    async def drain(self, connection_id: str) -> DrainResult:
        d = self.destination
        idle = 0.05
        while True:
            batch: list[PendingEvent] | None = None
            if self.handoff is not None and self.handoff.active:
                if len(self.handoff) == 0:
                    if not self.final:
                        return self.result
                    self.handoff.close()
                else:
                    batch = await self._from_memory()
            if batch is None:
                claimed_at = time.monotonic()
                claim = outbox.claim_batch
                batch = await in_thread(claim, self.engine, connection_id, d.batch_size, self.owner, self.lease)
                if batch is None:  # another drain is sending this connection's oldest events
                    if not self.wait_for_others:
                        self.result.busy_elsewhere = True
                        return self.result
                    await asyncio.sleep(idle)  # not self.sleep: that one paces the app's retries
                    idle = min(1.0, idle * 2)
                    continue
                idle, self.claimed_at = 0.05, claimed_at
                if not batch:
                    await self._note_deferred(connection_id)
                    return self.result
            if held := await in_thread(outbox.held_by_dead, self.engine, batch):
                await self._park_dead(held, "an older event of the same record is a dead letter; replay it first")
                continue
            verdict, probe_at = await in_thread(
                breaker.gate, self.engine, d.key, d.breaker, self.clock(), d.fingerprint
            )
            if verdict == "open":  # not this drain's turn: the batch goes back, free for the probe's drain
                await in_thread(outbox.release, self.engine, connection_id, self.owner)
                await self._park(probe_at)
                return self.result
            self.result.batches += 1
            started = time.perf_counter()
            try:
                await self._deliver(batch, 1 if verdict == "probe" else d.max_attempts)
            except _Unavailable as exc:
                await self._defer(exc)
                return self.result
            finally:
                self.result.seconds_posting += time.perf_counter() - started

    async def _from_memory(self) -> list[PendingEvent] | None:
        """The next batch the writer handed over, once the outbox confirms it may go now (still claimed by this
        sender, nothing of the connection before or between its rows); None: the hand-off is closed, and the
        drain reads the outbox instead (where the batch's rows still are)."""
        assert self.handoff is not None
        written, batch = self.handoff.take(self.destination.batch_size)
        fresh = time.monotonic() - written < self.lease / 3  # no other drain can have taken a claim this young
        if await in_thread(self._may_send, batch, fresh):
            self.claimed_at = written if fresh else time.monotonic()
            return batch
        self.handoff.close()
        return None

    def _may_send(self, batch: list[PendingEvent], fresh: bool) -> bool:
        if not fresh and outbox.renew(self.engine, [e.id for e in batch], self.owner, self.lease) != len(batch):
            return False
        return outbox.leads(self.engine, batch)

    async def _deliver(self, events: list[PendingEvent], tries: int) -> None:
        """Deliver `events` or make dead letters of the ones the app refuses; raises _Unavailable."""
        response = await self._post(events, tries)
        if response.is_success:
            await in_thread(outbox.ack, self.engine, [e.id for e in events], self.owner)
            self.result.delivered += len(events)
            return
        error = f"{self.destination.key} answered {response.status_code}: {response.text[:1000]}"
        named = _rejected(response, events)
        if named:
            await self._park_dead(named, error)
            await self._deliver_rest(events, tries)
        elif len(events) > 1 and response.status_code in _BISECT:
            middle = len(events) // 2
            logger.warning("the app refused %d events (%d); bisecting", len(events), response.status_code)
            await self._deliver(events[:middle], tries)
            await self._deliver_rest(events[middle:], tries)
        else:
            await self._park_dead(events, error)

    async def _deliver_rest(self, events: list[PendingEvent], tries: int) -> None:
        rest = [e for e in events if e.id not in self.parked_ids]
        if rest:
            await self._deliver(rest, tries)

    async def _post(self, events: list[PendingEvent], tries: int) -> httpx.Response:
        """POST the batch up to `tries` times; a 2xx or the app's 4xx verdict returns, anything else raises."""
        d = self.destination
        first = events[0]
        linked = await in_thread(
            linked_app_ids, self.engine, first.connection_id, first.data_source, [e.external_id for e in events]
        )
        body = encode_batch(events, linked)
        gate, budget = limits(d)
        error = ""
        for attempt in range(1, tries + 1):
            wait: float | None = None
            status = 0
            self.result.attempts += 1
            try:
                async with gate:
                    await budget.acquire()
                    await self._keep_claim(events)
                    response = await self.client.post(
                        d.url + d.path,
                        content=body,
                        headers=signed_headers(d, events, body),
                        timeout=d.timeout_seconds,
                        auth=d.auth or httpx.USE_CLIENT_DEFAULT,
                    )
            except httpx.TransportError as exc:
                error = f"{d.key}: {type(exc).__name__}: {exc}; is the app up?"
            except ConfigError as exc:  # the OAuth2 token endpoint refused: maybe down, maybe a wrong client
                error = str(exc)
            else:
                if response.status_code in _REFUSED:
                    await self._refused(events, response)
                if response.is_success or (400 <= response.status_code < 500 and response.status_code != 429):
                    await self._count_success()
                    return response
                status, error = response.status_code, f"{d.key} answered {response.status_code}: {response.text[:1000]}"
                wait = retry_after(response)
            if status != 429:  # a 429 is the app alive and saying when; only failures count against the breaker
                await self._count_failure(events, error)
            if attempt == tries:
                break
            if wait is None:
                wait = full_jitter(attempt, d.backoff_seconds, d.max_backoff_seconds)
            elif wait > d.max_backoff_seconds:
                raise _Unavailable(events, error, self.clock() + timedelta(seconds=wait))
            logger.warning(
                "delivery of %d events failed (%s); try %d, again in %.2fs", len(events), error, attempt, wait
            )
            await maybe_await(self.sleep(wait))
        raise _Unavailable(events, error, self.clock() + timedelta(seconds=wait) if wait else None)

    async def _keep_claim(self, events: list[PendingEvent]) -> None:
        """Renew the claim on the batch once a third of its lease is gone (retries, waits for the gate)."""
        if time.monotonic() - self.claimed_at > self.lease / 3:
            self.claimed_at = time.monotonic()
            await in_thread(outbox.renew, self.engine, [e.id for e in events], self.owner, self.lease)

    async def _count_success(self) -> None:
        """The app answered: close its breaker, writing only when there is something to reset."""
        d = self.destination
        if self.breaker_clean is None:
            self.breaker_clean = await in_thread(breaker.is_clean, self.engine, d.key)
        if not self.breaker_clean:
            await in_thread(breaker.record_success, self.engine, d.key)
            self.breaker_clean = True

    async def _refused(self, events: list[PendingEvent], response: httpx.Response) -> None:
        """A 401/403: open the breaker at once (no retry can help) and keep the events; raises _Unavailable."""
        d = self.destination
        error = f"{d.key} answered {response.status_code} ({response.text[:200]}); {REFUSAL_FIX}"
        self.breaker_clean = False
        probe_at = await in_thread(breaker.record_refusal, self.engine, d.key, d.breaker, error, d.fingerprint)
        logger.error("%s", error)
        raise _Unavailable(events, error, probe_at, breaker_open=True, refused=True)

    async def _count_failure(self, events: list[PendingEvent], error: str) -> None:
        """A 5xx or a lost connection counts against the breaker; raises once the breaker is open."""
        d = self.destination
        self.breaker_clean = False
        probe_at = await in_thread(breaker.record_failure, self.engine, d.key, d.breaker, error, self.clock())
        if probe_at is not None:
            raise _Unavailable(events, error, probe_at, breaker_open=True)

    async def _defer(self, exc: _Unavailable) -> None:
        """Keep the events for a later attempt, or make them dead letters once they are too old to wait."""
        d, now, events = self.destination, self.clock(), exc.events
        self.result.last_error = exc.error
        oldest = max(age(e, now) for e in events)
        if oldest.total_seconds() > d.max_age_seconds and not exc.refused:
            await self._park_dead(
                events, f"still failing after {oldest} (max age {d.max_age_seconds:.0f} s): {exc.error}"
            )
            self.result.pending_left = True  # the connection may hold more; the next drain sees
            return
        jitter = full_jitter(events[0].attempts + 1, d.retry_base_seconds, d.retry_cap_seconds)
        delay = timedelta(seconds=min(d.retry_cap_seconds, d.retry_base_seconds + jitter))
        # Refused events wait only behind the breaker, which lets changed credentials through at once.
        when = now if exc.refused else max(now + delay, exc.not_before or now)
        await in_thread(outbox.defer, self.engine, [e.id for e in events], exc.error, next_attempt_at=when)
        self.result.pending_left, self.result.parked, self.result.next_attempt_at = True, exc.breaker_open, when
        self.result.refused = self.result.refused or exc.refused

    async def _park_dead(self, events: list[PendingEvent], error: str) -> None:
        parked = await in_thread(outbox.park_records, self.engine, events, error)
        self.parked_ids |= parked
        self.result.dead += len(parked)
        self.result.dead_errors.append(error)

    async def _park(self, probe_at: datetime | None) -> None:
        self.result.pending_left = self.result.parked = True
        self.result.next_attempt_at = probe_at
        state = (await in_thread(breaker.read_states, self.engine)).get(self.destination.key)
        if state is not None and state.refused_credentials is not None:  # refused earlier: say why, and the fix
            self.result.refused = True
            self.result.last_error = state.last_error
            return
        self.result.last_error = (
            f"the breaker of {self.destination.key} is open: deliveries wait for the probe at {probe_at}"
        )

    async def _note_deferred(self, connection_id: str) -> None:
        # Events deferred by an earlier failure are not due yet, but they are still left.
        when = await in_thread(outbox.next_attempt, self.engine, connection_id)
        if when is not None:
            self.result.pending_left = True
            self.result.next_attempt_at = self.result.next_attempt_at or when
            self.result.last_error = (
                self.result.last_error or f"deferred events wait for their next attempt at {when} UTC"
            )


async def maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value


def _rejected(response: httpx.Response, events: list[PendingEvent]) -> list[PendingEvent]:
    """The events a 4xx body names as refused: `{"rejected": [{"event_id": ...} | {"idempotency_key": ...}]}`."""
    try:
        body = orjson.loads(response.content)
        named = {str(item.get("event_id") or item.get("idempotency_key")) for item in body["rejected"]}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return []
    return [e for e in events if e.event_id in named or e.idempotency_key in named]


async def drain(
    engine: Engine,
    connection_id: str,
    destination: Destination,
    client: httpx.AsyncClient,
    *,
    sleep: Callable[[float], object] = asyncio.sleep,
    clock: Callable[[], datetime] = utcnow,
    wait_for_others: bool = True,
    handoff: Handoff | None = None,
    final: bool = True,
) -> DrainResult:
    """Send every due pending event of one connection, batch by batch, until none is left or the app fails.

    Each batch is claimed first (one sender per row). While another drain sends the connection's oldest events,
    this one waits for it (`wait_for_others`) or leaves them to it, with `busy_elsewhere` set. With a `handoff`
    (a full import), the events its writer handed over go from memory, under the claims they were written with;
    until the `final` drain (the writer is done), a drain ends when memory is empty."""
    sender = Sender(engine, destination, client, sleep, clock)
    sender.wait_for_others = wait_for_others
    if handoff is not None:
        sender.handoff, sender.owner, sender.final = handoff, handoff.owner, final
    return await sender.drain(connection_id)
