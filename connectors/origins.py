"""Where a connection's credentials may go: the origins (scheme, host, port) its connector declares.

A connection's origins are its `base_url`'s and those listed under `origins:` in connector.yaml, filled
with its parameters. `OriginBoundAuth` attaches the credentials only to requests for those origins, so a
next link, a delta link or a redirect to any other origin leaves without them, whatever code sends it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable

import httpx

__all__ = ["Origin", "OriginBoundAuth", "origin_of", "show"]

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: httpx.URL | str) -> Origin:
    """`("https", "acme.zendesk.com", 443)`: the scheme, the lower-case host and the port (default filled in)."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    return parsed.scheme, parsed.host.lower().rstrip("."), parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)


def show(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if _DEFAULT_PORTS.get(scheme) == port else f":{port}")


class OriginBoundAuth(httpx.Auth):
    """The wrapped auth on requests to `origins`; any other request is sent as it is, with no credentials."""

    def __init__(self, inner: httpx.Auth, origins: Iterable[Origin]) -> None:
        self.inner = inner
        self.origins = frozenset(origins)

    def __repr__(self) -> str:
        return f"OriginBoundAuth({self.inner!r}, {sorted(show(o) for o in self.origins)})"

    def allows(self, url: httpx.URL) -> bool:
        return origin_of(url) in self.origins

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self.allows(request.url):
            yield request
            return
        yield from self.inner.sync_auth_flow(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self.allows(request.url):
            yield request
            return
        flow = self.inner.async_auth_flow(request)
        outgoing = await flow.__anext__()
        while True:
            response = yield outgoing
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return
