"""The egress guard: no connection calls a loopback, private, link-local or metadata address unless the
installation allow-lists the host.

`EgressGuard` wraps the transport every connector client and the OAuth token client send through. For
each request (each hop of a redirect too) it resolves the host the way a socket would (`getaddrinfo`, so
`2130706433`, `0x7f.0.0.1` and `127.1` are 127.0.0.1), refuses the request when any address is internal,
and sends it to the address it checked (the URL's host stays in the Host header and TLS SNI), so a second
DNS answer cannot swap in another address. Only the operator widens it:

    INLET_EGRESS__ALLOW_HOSTS='["127.0.0.1", "kinto.internal:8888"]'

An entry is a host name or an IP address, with an optional port; an IP entry also admits names that
resolve to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.errors import EgressRefused
from connectors.tls import tls_context

__all__ = ["EgressGuard", "EgressPolicy", "Resolver", "guarded_transport", "internal_reason", "resolve"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; Alibaba's metadata is 100.100.100.200
_IETF = ipaddress.ip_network("192.0.0.0/24")  # protocol assignments, never global; Oracle's metadata is 192.0.0.192
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class EgressPolicy(BaseModel):
    """What the operator lets connections reach beyond public addresses (`setting` names where it is set)."""

    model_config = ConfigDict(frozen=True)

    allow_hosts: frozenset[str] = frozenset()
    setting: str = "INLET_EGRESS__ALLOW_HOSTS"
    advice: str | None = Field(None, description="what to say instead of naming the setting (a policy without one)")

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return frozenset(str(entry).strip().lower() for entry in value) if value is not None else value

    def allows(self, host: str, port: int | None, address: str | None = None) -> bool:
        """True when an entry names `host` (or, for an IP entry, `address`) and, if it has one, `port`."""
        host = host.lower().rstrip(".")
        for entry in self.allow_hosts:
            name, wanted = _split_entry(entry)
            if wanted is not None and wanted != port:
                continue
            if name == host or (address is not None and _same_ip(name, address)):
                return True
        return False

    def hint(self, host: str) -> str:
        """How the operator would let `host` through, for refusal messages."""
        if self.advice is not None:
            return self.advice
        return f'allow it with {self.setting}=["{host}"] if the installation really means to reach it'


def internal_reason(address: str) -> str | None:
    """Why an address is internal ("loopback", "private", ...), or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for inner in _embedded_ipv4(ip):
        reason = _reason(inner)
        if reason is not None:
            return f"{reason} (as {address})"
    return _reason(ip)


def _reason(ip: IPAddress) -> str | None:
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local (where cloud metadata services answer)"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.version == 4 and ip in _SHARED, "shared (carrier-grade NAT)"),
        (ip.version == 4 and ip in _IETF, "special-purpose (IETF)"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-public"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries: mapped, 6to4, Teredo, NAT64 and the old compatible form."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64 or int(ip) >> 32 == 0:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def _split_entry(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def _same_ip(entry: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(entry) == ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False


async def resolve(host: str, port: int) -> list[str]:
    """The addresses a socket would connect to for `host` (the seam tests patch)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressGuard(httpx.AsyncBaseTransport):
    """Refuses requests to internal addresses, then sends each one to the address it checked."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: EgressPolicy, resolver: Resolver | None = None) -> None:
        self._inner = inner
        self.policy = policy
        self._resolver = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
        if self.policy.allows(url.host, port):
            return await self._inner.handle_async_request(request)
        addresses = await self._addresses(request, url.host, port)
        for address in addresses:
            reason = internal_reason(address)
            if reason is not None and not self.policy.allows(url.host, port, address):
                raise EgressRefused(
                    f"refused a request to {url.scheme}://{url.netloc.decode()}: {url.host} is a {reason} address "
                    f"({address}), and connections do not call internal addresses (the egress rule); "
                    f"{self.policy.hint(url.host)}"
                )
        return await self._inner.handle_async_request(_pinned(request, addresses[0]))

    async def _addresses(self, request: httpx.Request, host: str, port: int) -> list[str]:
        timeout = (request.extensions.get("timeout") or {}).get("connect")
        try:
            addresses = await asyncio.wait_for((self._resolver or resolve)(host, port), timeout)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        if not addresses:
            raise httpx.ConnectError(f"{host} resolves to no address", request=request)
        return addresses

    async def aclose(self) -> None:
        await self._inner.aclose()


def _pinned(request: httpx.Request, address: str) -> httpx.Request:
    """The request sent to `address`; the Host header and TLS SNI keep the URL's host name."""
    url = request.url
    if url.host == address.split("%", 1)[0]:
        return request
    extensions = dict(request.extensions)
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host
    return httpx.Request(
        request.method,
        url.copy_with(host=address),
        headers=request.headers,
        stream=request.stream,
        extensions=extensions,
    )


def guarded_transport(policy: EgressPolicy, resolver: Resolver | None = None) -> EgressGuard:
    """A network transport behind the egress guard (environment proxies are not used: they would bypass it)."""
    # one TLS context per process: httpx would load certifi's bundle again for each transport (~20 ms of CPU)
    return EgressGuard(httpx.AsyncHTTPTransport(verify=tls_context()), policy, resolver)
