"""A loopback proxy in front of an external app that fails its next writes on purpose.

faults = Faults(["429", "503-late"])
with faulty_proxy(upstream_url, faults) as url: ...   # connect inlet to `url`
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.serving import serve_in_thread

__all__ = ["Faults", "faulty_proxy"]

_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-encoding"})


@dataclass
class Faults:
    """What the proxy does to the next writes (non-GET requests): `429` refuses, `503-late` lets the write
    through and then answers 503, as if the answer was lost; `delay` slows every write; `race` runs once,
    just before the next write goes on (someone else changes the record between inlet's read and write)."""

    plan: list[str] = field(default_factory=list)
    delay: float = 0.0
    writes: int = 0
    race: Callable[[], None] | None = None


@contextmanager
def faulty_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """Serve the proxy on 127.0.0.1; every header but the hop-by-hop ones goes through both ways."""

    async def forward(request: Request) -> Response:
        fault = faults.plan.pop(0) if request.method != "GET" and faults.plan else None
        if request.method != "GET":
            faults.writes += 1
            await asyncio.sleep(faults.delay)
            race, faults.race = faults.race, None
            if race is not None:
                await asyncio.to_thread(race)
        if fault == "429":
            return Response(status_code=429, headers={"Retry-After": "0"})
        async with httpx.AsyncClient(base_url=upstream, timeout=30) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=request.query_params,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.lower() not in _HOP},
            )
        if fault == "503-late":
            return Response(status_code=503)
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        return Response(answer.content, answer.status_code, headers=headers)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", forward, methods=methods)])
    with serve_in_thread(app) as url:
        yield url
