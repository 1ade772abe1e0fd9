"""Who is calling and what they may do: API keys with scopes (read < write < admin), connect sessions bound to
one tenant and its allowed connectors, rate limits kept in the store, and the audit log.

    key = create_api_key(inst, "backend", ["write"])        # the key is returned once; only its hash is kept
    caller = authenticate(inst, "ik_...")                    # a Principal, or Refused
    authorize(caller, "write", tenant="acme", connector="hubspot")
    session, token = create_connect_session(inst, caller, "acme", ["hubspot"])
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, cast

from inlet.errors import ConfigError, NotFound, RateLimited, Refused
from inlet.service.connectors import connector_info
from inlet.service.installation import Installation
from inlet.service.paging import Page, checked_limit, decode_cursor, page_of
from inlet.service.tenants import require_tenant
from inlet.store import (
    ApiKey,
    AuditEntry,
    ConnectSession,
    audit_entries,
    count_hit,
    find_api_key,
    find_session,
    issue_api_key,
    issue_session,
    list_api_keys,
    revoke_api_key,
    utcnow,
    write_audit,
)

__all__ = [
    "ConnectSessionView",
    "OPERATOR",
    "SCOPES",
    "Principal",
    "Scope",
    "audit_log",
    "authenticate",
    "authorize",
    "check_rate",
    "create_api_key",
    "create_connect_session",
    "list_keys",
    "open_connect_session",
    "record_audit",
    "revoke_key",
]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
_IMPLIED: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an API key, a tenant's connect session, or the operator at the command line."""

    kind: Literal["api_key", "session", "operator", "anonymous"]
    id: str
    scopes: frozenset[str]
    tenant: str | None = None
    connectors: tuple[str, ...] = ()
    parameters: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.id}"


OPERATOR = Principal("operator", "cli", _IMPLIED["admin"])


def create_api_key(inst: Installation, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
    """A new key; the second value is the key itself, which is never stored nor shown again."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ConfigError(f"scopes must be some of {list(SCOPES)}, not {sorted(scopes)}")
    if not name.strip() or len(name) > 100:
        raise ConfigError("an API key needs a name of 1 to 100 characters")
    return issue_api_key(inst.engine, name.strip(), sorted(set(scopes), key=SCOPES.index))


def list_keys(inst: Installation, *, cursor: str | None = None, limit: int = 100) -> Page[ApiKey]:
    after = cast(str | None, decode_cursor(cursor, str))
    return page_of(list_api_keys(inst.engine, after=after, limit=checked_limit(limit) + 1), limit, lambda k: k.id)


def revoke_key(inst: Installation, key_id: str) -> None:
    if not revoke_api_key(inst.engine, key_id):
        raise NotFound(f"no live API key {key_id!r}; `inlet api-keys list` shows them")


def authenticate(inst: Installation, secret: str, *, client: str = "-") -> Principal:
    """The caller a bearer secret names; Refused (after counting the failure for `client`) when it names none."""
    principal = _principal(inst, secret)
    if principal is None:
        check_rate(inst, f"login-failure:{client}", inst.settings.api.failed_logins_per_minute)
        raise Refused("unknown, revoked or expired key or session")
    return principal


def _principal(inst: Installation, secret: str) -> Principal | None:
    if secret.startswith("ik_"):
        key = find_api_key(inst.engine, secret)
        return Principal("api_key", key.id, _granted(key.scopes)) if key else None
    if secret.startswith("cs_"):
        session = find_session(inst.engine, secret)
        if session is None or _aware(session.expires_at) <= utcnow():
            return None
        return Principal(
            "session",
            session.id,
            _IMPLIED["write"],
            tenant=session.tenant_id,
            connectors=tuple(session.connectors),
            parameters=session.parameters,
            expires_at=_aware(session.expires_at),
        )
    return None


def authorize(principal: Principal, scope: Scope, *, tenant: str | None = None, connector: str | None = None) -> None:
    """Refused unless the caller holds the scope, and a session acts for its own tenant and allowed connectors."""
    if scope not in principal.scopes:
        raise Refused(f"this {principal.kind.replace('_', ' ')} lacks the {scope!r} scope")
    if principal.kind != "session":
        return
    if tenant is None or tenant != principal.tenant:
        raise Refused("a connect session acts only for its own tenant")
    if connector is not None and connector not in principal.connectors:
        raise Refused(f"this connect session does not allow the connector {connector!r}")


def create_connect_session(
    inst: Installation,
    principal: Principal,
    tenant: str,
    connectors: Sequence[str],
    parameters: Mapping[str, Mapping[str, str]] | None = None,
    ttl_seconds: float | None = None,
) -> tuple[ConnectSession, str]:
    """A session for one tenant's browser; the token is returned once. `parameters` are set per connector by the
    backend (an API root, a login host) and not asked of the tenant."""
    if principal.kind == "session":
        raise Refused("a connect session cannot create sessions")
    require_tenant(inst, tenant)
    if not connectors:
        raise ConfigError("a connect session needs at least one allowed connector")
    presets = {name: dict(values) for name, values in (parameters or {}).items()}
    for name in {*connectors, *presets}:
        info = connector_info(name)  # NotFound for an unknown connector
        if name not in connectors:
            raise ConfigError(f"parameters are given for {name!r}, which the session does not allow")
        schema = info.auth_schema["properties"]["parameters"]["properties"]
        unknown = sorted(set(presets.get(name, {})) - set(schema))
        if unknown:
            raise ConfigError(f"{name} has no parameters {unknown}; it takes {sorted(schema)}")
    longest = inst.settings.api.session_ttl_seconds
    ttl = min(ttl_seconds or longest, longest)
    return issue_session(
        inst.engine,
        tenant_id=tenant,
        connectors=sorted(set(connectors)),
        parameters=presets,
        created_by=principal.actor,
        ttl_seconds=ttl,
    )


@dataclass(frozen=True)
class ConnectSessionView:
    """A new connect session as its creator sees it, once: the token and the page to open."""

    id: str
    tenant: str
    connectors: list[str]
    expires_at: datetime
    token: str
    url: str


def open_connect_session(
    inst: Installation,
    principal: Principal,
    tenant: str,
    connectors: Sequence[str],
    *,
    parameters: Mapping[str, Mapping[str, str]] | None = None,
    ttl_seconds: float | None = None,
) -> ConnectSessionView:
    """`create_connect_session`, with the URL of the connect page the tenant's browser opens."""
    row, token = create_connect_session(inst, principal, tenant, connectors, parameters, ttl_seconds)
    url = f"{inst.settings.public_url}/pages/{token}/connect"
    return ConnectSessionView(row.id, row.tenant_id, list(row.connectors), _aware(row.expires_at), token, url)


def check_rate(inst: Installation, key: str, per_minute: int, *, now: float | None = None) -> None:
    """Count one attempt of `key`; RateLimited (with the seconds left in the minute) past `per_minute`."""
    moment = time.time() if now is None else now
    if count_hit(inst.engine, key, 60, moment) > per_minute:
        raise RateLimited(f"too many attempts; try again in {60 - int(moment) % 60} s", 60 - int(moment) % 60)


def record_audit(
    inst: Installation, principal: Principal, action: str, *, tenant: str | None, target: str | None, status: int
) -> None:
    write_audit(inst.engine, actor=principal.actor, action=action, tenant_id=tenant, target=target, status=status)


def audit_log(
    inst: Installation, tenant: str | None = None, *, cursor: str | None = None, limit: int = 100
) -> Page[AuditEntry]:
    """Newest first."""
    before = cast(int | None, decode_cursor(cursor, int))
    rows = audit_entries(inst.engine, tenant_id=tenant, before=before, limit=checked_limit(limit) + 1)
    return page_of(rows, limit, lambda e: e.id or 0)


def _granted(scopes: Sequence[str]) -> frozenset[str]:
    return frozenset().union(*(_IMPLIED[s] for s in scopes if s in _IMPLIED))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
