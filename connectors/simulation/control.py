"""The `/_sim/*` control endpoints every simulator serves, for tests and demos driving it over HTTP.

POST /_sim/mutate   {"create": 2, "update": 3 | ["id", ...], "delete": 1 | ["id", ...]}
POST /_sim/faults   {"status_429": 2, "retry_after": 0.01, ...}   (see `Faults`)
GET  /_sim/stats    requests by kind, live and deleted records
POST /_sim/reset    clear faults, counters and rate-limit usage
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.simulation.answers import json_response
from connectors.simulation.faults import Faults

__all__ = ["Controlled", "control_routes"]

_MUTATIONS = ("create", "update", "delete")


class Controlled(Protocol):
    """What the control endpoints drive: a simulator's Python control API."""

    faults: Faults

    def create(self, n: int) -> list[str]: ...

    def update(self, ids: int | Sequence[str]) -> list[str]: ...

    def delete(self, ids: int | Sequence[str]) -> list[str]: ...

    def inject(self, **faults: Any) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def reset(self) -> None: ...


def control_routes(sim: Controlled) -> list[BaseRoute]:
    async def mutate(request: Request) -> Response:
        try:
            body = _mutation(await request.body())
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(
            {
                "created": sim.create(body.get("create", 0)),
                "updated": sim.update(body.get("update") or []),
                "deleted": sim.delete(body.get("delete") or []),
            }
        )

    async def faults(request: Request) -> Response:
        try:
            sim.inject(**_object(await request.body()))
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(asdict(sim.faults))

    async def reset(request: Request) -> Response:
        sim.reset()
        return json_response(sim.stats())

    return [
        Route("/_sim/mutate", mutate, methods=["POST"]),
        Route("/_sim/faults", faults, methods=["POST"]),
        Route("/_sim/stats", lambda _: json_response(sim.stats()), methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]


def _mutation(raw: bytes) -> dict[str, Any]:
    """{create: n, update: n | ids, delete: n | ids}, checked; ValueError names what is wrong."""
    body = _object(raw)
    if unknown := set(body) - set(_MUTATIONS):
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {list(_MUTATIONS)}")
    _count("create", body.get("create", 0))
    for name in ("update", "delete"):
        value = body.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str | int) for v in value)):
            _count(name, value)
        if isinstance(value, list):
            body[name] = [str(v) for v in value]
    return body


def _object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value
