"""Webhook deliveries a simulator sends, with its app's retry rules, on the simulated clock.

A simulator with webhooks queues a `Delivery` per notification; `Outbox.deliver` POSTs the ones that are
due (over a real HTTP client, or any httpx transport a test hands in) and schedules retries by the app's
`RetryPolicy`, so advancing the clock makes retries due. A delivery renders its headers and body per
attempt, because apps number their attempts (`attemptNumber`, `attempt`, `retry`) and sign with the time:

    sim.outbox.queue("sub-1", "https://inlet.example/webhooks/hubspot", render)
    sent = await sim.outbox.deliver(httpx.AsyncClient(transport=receiver))
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from connectors.simulation.clock import SimClock

__all__ = ["Delivery", "Outbox", "RetryPolicy", "Sent"]

Render = Callable[[int], tuple[dict[str, str], bytes]]  # attempt (0 = first) -> headers, body


@dataclass(frozen=True)
class RetryPolicy:
    """When an app sends a failed delivery again: after `delays` (seconds, one per retry), never for
    `final_statuses`, within `give_up_after` seconds of the first attempt; waiting a receiver's
    Retry-After on a 429 when `honour_retry_after`."""

    delays: tuple[float, ...] = ()
    final_statuses: frozenset[int] = frozenset()
    honour_retry_after: bool = False
    give_up_after: float | None = None
    timeout: float = 10.0  # seconds the app waits for an answer; longer is a failure


@dataclass
class Delivery:
    """One notification on its way to `url`, for subscription (or webhook) `target`."""

    id: int
    target: str
    url: str
    render: Render
    queued: float  # simulated epoch seconds
    due: float
    attempt: int = 0


@dataclass(frozen=True)
class Sent:
    """One attempt: the status the receiver answered (None: no answer in time, or no connection)."""

    delivery: int
    target: str
    url: str
    attempt: int
    status: int | None
    retry_at: float | None  # when the next attempt is due; None: done (delivered or given up)
    body: bytes = field(repr=False, default=b"")


class Outbox:
    """Deliveries waiting to be sent, on one simulator's clock; `log` keeps every attempt."""

    def __init__(self, clock: SimClock, policy: RetryPolicy) -> None:
        self.clock, self.policy = clock, policy
        self.log: list[Sent] = []
        self.on_sent: Callable[[Sent], None] | None = None  # the app's bookkeeping (bans, removals)
        self._waiting: list[Delivery] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def queue(self, target: str, url: str, render: Render) -> Delivery:
        now = self.clock.time()
        delivery = Delivery(next(self._ids), target, url, render, now, now)
        with self._lock:
            self._waiting.append(delivery)
        return delivery

    def pending(self) -> list[Delivery]:
        with self._lock:
            return list(self._waiting)

    def drop(self, target: str) -> None:
        """Forget what waits for `target` (its subscription was deleted or banned)."""
        with self._lock:
            self._waiting = [d for d in self._waiting if d.target != target]

    async def deliver(self, client: httpx.AsyncClient) -> list[Sent]:
        """Send every due delivery once; failed ones wait for their retry (or are given up)."""
        now = self.clock.time()
        with self._lock:
            due = [d for d in self._waiting if d.due <= now]
            self._waiting = [d for d in self._waiting if d.due > now]
        sent = [await self._send(client, delivery) for delivery in due]
        self.log += sent
        return sent

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> Sent:
        headers, body = delivery.render(delivery.attempt)
        try:
            response = await client.post(delivery.url, content=body, headers=headers, timeout=self.policy.timeout)
            status: int | None = response.status_code
            retry_after = response.headers.get("retry-after", "")
        except httpx.HTTPError:
            status, retry_after = None, ""
        retry_at = None if status is not None and 200 <= status < 300 else self._retry_at(delivery, status, retry_after)
        result = Sent(delivery.id, delivery.target, delivery.url, delivery.attempt, status, retry_at, body)
        if retry_at is not None:
            delivery.attempt, delivery.due = delivery.attempt + 1, retry_at
            with self._lock:
                self._waiting.append(delivery)
        if self.on_sent is not None:
            self.on_sent(result)
        return result

    def _retry_at(self, delivery: Delivery, status: int | None, retry_after: str) -> float | None:
        policy, now = self.policy, self.clock.time()
        if status in policy.final_statuses or delivery.attempt >= len(policy.delays):
            return None
        wait = policy.delays[delivery.attempt]
        if status == 429 and policy.honour_retry_after and retry_after.replace(".", "", 1).isdigit():
            wait = float(retry_after)
        if policy.give_up_after is not None and now + wait - delivery.queued > policy.give_up_after:
            return None
        return now + wait
