"""Plain values the connector runtime hands around: a page's request (checkpointable) and a page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

__all__ = ["Page", "PageRequest"]


@dataclass(frozen=True)
class PageRequest:
    """One page's request in a form a checkpoint can store (auth is added when it is sent)."""

    method: str
    url: str
    body: bytes | None = None

    def to_json(self) -> str:
        return orjson.dumps(
            {"method": self.method, "url": self.url, "body": self.body.decode() if self.body else None}
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> PageRequest:
        data = orjson.loads(text)
        body = data.get("body")
        return cls(method=data["method"], url=data["url"], body=body.encode() if body else None)

    @classmethod
    def from_httpx(cls, request: httpx.Request) -> PageRequest:
        return cls(method=request.method, url=str(request.url), body=request.content or None)


@dataclass(frozen=True)
class Page:
    """Raw records of one page and the request for the next one (None at the end)."""

    records: list[dict[str, Any]]
    next: PageRequest | None
    url: str
