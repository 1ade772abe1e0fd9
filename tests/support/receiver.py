"""A webhook receiver for what simulators send: it records each request and checks it with the connector's hooks.

receiver = Receiver("hubspot", secret="s3cret", now=sim.clock.time, statuses=[500])
sent = await sim.deliver(receiver.client())          # answered 500, then 200
assert [e.kind for e in receiver.events()] == ["upsert"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpx

from connectors.registry import load
from connectors.webhooks import WebhookEvent, WebhookRequest

__all__ = ["Receiver"]


class Receiver:
    """Answers deliveries with `statuses` in turn (then 200; a `(status, headers)` pair sets headers), or a
    subscription handshake with the app's `webhook_handshake` hook; keeps every request in `requests`."""

    def __init__(
        self,
        app: str,
        secret: str = "",
        now: Callable[[], float] | None = None,
        statuses: Iterable[int | tuple[int, dict[str, str]]] = (),
    ) -> None:
        self.app, self.secret, self._now = app, secret, now
        self.hooks = load(app)[1]
        self.statuses = list(statuses)
        self.requests: list[WebhookRequest] = []
        self.answered: list[int] = []  # the status each request in `requests` got
        self.handshakes: list[WebhookRequest] = []

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._answer)

    def events(self) -> list[WebhookEvent]:
        """The record changes announced by the deliveries answered 2xx, each verified as the connector would."""
        return [event for request in self.accepted() for event in self.parse(request)]

    def accepted(self) -> list[WebhookRequest]:
        return [r for r, status in zip(self.requests, self.answered, strict=True) if 200 <= status < 300]

    def parse(self, request: WebhookRequest) -> list[WebhookEvent]:
        if self.hooks.verify_webhook is not None:
            self.hooks.verify_webhook(request, self.secret, self._now() if self._now else 0.0)
        assert self.hooks.parse_webhook is not None
        return self.hooks.parse_webhook(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        received = WebhookRequest(request.method, str(request.url), request.headers, request.read())
        if self.hooks.webhook_handshake is not None and (reply := self.hooks.webhook_handshake(received)):
            self.handshakes.append(received)
            return httpx.Response(reply.status, content=reply.body, headers=reply.headers)
        status, headers = self.statuses.pop(0) if self.statuses else 200, dict[str, str]()
        if isinstance(status, tuple):
            status, headers = status
        self.requests.append(received)
        self.answered.append(status)
        return httpx.Response(status, headers=headers)
