"""What the security tests share: a loopback server that records every request it gets, and an installation
(egress policy) that allows nothing beyond public addresses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from connectors.egress import EgressPolicy
from tests.support.serving import serve_in_thread

STRICT = EgressPolicy()  # an installation that allow-lists nothing

Reply = Callable[["Seen", str], tuple[int, Any, dict[str, str]]]


def recording(sent: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    """A stand-in network that keeps every request in `sent` and answers `status` with an empty JSON object."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, json={})

    return httpx.MockTransport(answer)


@dataclass(frozen=True)
class Seen:
    """One request a Recorder received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def carries(self, secret: str) -> bool:
        """True when the secret is anywhere in the request: path, query, a header or the body."""
        text = " ".join([self.path, self.query, *self.headers.values()]) + self.body.decode(errors="replace")
        return secret in text


@dataclass
class Recorder:
    """An ASGI app that keeps every request and answers with `reply(seen, own_url)` (default: `{"data": []}`)."""

    reply: Reply | None = None
    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        seen = Seen(scope["method"], scope["path"], scope["query_string"].decode(), headers, body)
        self.seen.append(seen)
        status, payload, extra = self.reply(seen, self.url) if self.reply else (200, {"data": []}, {})
        content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        raw = [(b"content-type", b"application/json"), *((k.encode(), v.encode()) for k, v in extra.items())]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})


@pytest.fixture
def recorders() -> Iterator[Callable[..., Recorder]]:
    """`start(reply=None)`: a Recorder served over real HTTP on 127.0.0.1 (its URL in `.url`) for the test."""
    stops: list[Any] = []

    def start(reply: Reply | None = None) -> Recorder:
        recorder = Recorder(reply)
        served = serve_in_thread(recorder)
        recorder.url = served.__enter__()
        stops.append(served)
        return recorder

    yield start
    for served in reversed(stops):
        served.__exit__(None, None, None)
