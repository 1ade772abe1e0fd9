"""Who calls the API: `Authorization: Bearer <API key or connect session token>`, checked on every route, and
the audit middleware that writes every call that changes something (who, what, when, how it ended).

A route declares what it needs with `Depends(allow("write"))` (a scope, and whether a connect session may
call it); on a route with `{tenant}` a session must be its own tenant's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inlet import service
from inlet.api.problems import Unauthenticated
from inlet.errors import Refused
from inlet.service import Installation, Principal

__all__ = ["AuditMiddleware", "Caller", "Inst", "allow", "installation", "rate_limited"]

_bearer = HTTPBearer(auto_error=False, description="an API key (ik_...) or a connect session token (cs_...)")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def installation(request: Request) -> Installation:
    inst: Installation = request.app.state.installation
    return inst


Inst = Annotated[Installation, Depends(installation)]


async def _caller(
    request: Request, inst: Inst, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthenticated("send `Authorization: Bearer <API key or connect session token>`")
    client = request.client.host if request.client else "-"
    try:
        principal = await run_in_threadpool(service.authenticate, inst, credentials.credentials, client=client)
    except Refused as exc:
        raise Unauthenticated(str(exc)) from None
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(_caller)]


def allow(scope: service.Scope, *, sessions: bool = False) -> Callable[..., Principal]:
    """A dependency: the caller holds `scope`; a connect session only where `sessions` and for its own tenant."""

    def check(request: Request, principal: Caller) -> Principal:
        if principal.kind == "session" and not sessions:
            raise Refused("a connect session cannot call this; use an API key")
        service.authorize(principal, scope, tenant=request.path_params.get("tenant"))
        return principal

    return check


def rate_limited(bucket: str) -> Callable[..., None]:
    """A dependency counting one attempt of the caller in `bucket` (credentials, sessions)."""

    def count(inst: Inst, principal: Caller) -> None:
        limits = inst.settings.api
        per_minute = {"credentials": limits.credential_checks_per_minute, "sessions": limits.sessions_per_minute}
        service.check_rate(inst, f"{bucket}:{principal.actor}", per_minute[bucket])

    return count


class AuditMiddleware:
    """Writes an audit entry for every call that is not a read, as it is answered (refused ones included)."""

    def __init__(self, app: ASGIApp, installation: Callable[[], Installation], prefix: str) -> None:
        self.app = app
        self.installation = installation
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        written = False

        async def send_audited(message: Message) -> None:
            nonlocal written
            if message["type"] == "http.response.start" and not written:
                written = True  # before the answer leaves: a caller who saw it finds the entry
                await run_in_threadpool(self._write, scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        finally:
            if not written:
                await run_in_threadpool(self._write, scope, 500)

    def _write(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal: Principal | None = state.get("principal")
        client = scope.get("client") or ("-", 0)
        actor = principal or Principal("anonymous", str(client[0]), frozenset())
        params: dict[str, str] = scope.get("path_params") or {}
        route = getattr(scope.get("route"), "path", None) or "(no route)"
        service.record_audit(
            self.installation(),
            actor,
            f"{scope['method']} {self.prefix}{route}",
            tenant=params.get("tenant") or actor.tenant,
            target=",".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "token") or None,
            status=status,
        )
