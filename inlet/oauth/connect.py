"""Connecting a tenant's account with OAuth 2.0: the connect flow, and the httpx auth a run uses.

    inlet oauth clients add --app hubspot --client-id ... --client-secret env:HUBSPOT_SECRET
    inlet connections connect --tenant acme --app hubspot     # prints a connect link and the consent URL
    GET /oauth/start?link=...                                  # `inlet serve`: 302 to the consent URL
    GET /oauth/callback?code=...&state=...                     # `inlet serve`: exchanges and stores

The `state` is a Fernet token (the vault's key: encrypted, authenticated, timestamped) holding a nonce,
the tenant, the connection and the app. The callback refuses it when forged or altered, older than
`oauth_state_ttl_seconds`, or already used (its nonce row is consumed atomically), and stores nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx
from cryptography.fernet import InvalidToken
from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col

from connectors.errors import InvalidParameter, NeedsReauth
from connectors.oauth import (
    Grant,
    OAuth2Auth,
    OAuth2Spec,
    TokenSet,
    authorization_url,
    pkce_verifier,
    request_token,
)
from connectors.parameters import check_values
from connectors.registry import load
from connectors.spec import RESERVED_PARAMETERS
from inlet.errors import ConfigError, NotFound
from inlet.oauth.clients import bound_grant, client_for, grant_spec, redirect_url, register_client, token_client
from inlet.oauth.tokens import StoredTokens, read_tokens, reauth_message, save_tokens
from inlet.settings import Settings
from inlet.store import Connection, LoadedConnection, OAuthState, Tenant, Vault, utcnow

__all__ = [
    "Connected",
    "StateRefused",
    "client_for",
    "connect_app_only",
    "connect_link",
    "finish_connect",
    "grant_spec",
    "oauth_auth",
    "open_link",
    "redirect_url",
    "register_client",
    "spend_state",
    "start_connect",
]


class StateRefused(ConfigError):
    """A callback whose `state` is forged, expired or already used."""


@dataclass(frozen=True)
class Connected:
    tenant_id: str
    connection_id: str
    app: str


def connect_link(vault: Vault, settings: Settings, *, tenant_id: str, app: str, connection_id: str) -> str:
    """A link to the receiver's `/oauth/start` that serves this connection's consent URL (reusable until it expires)."""
    sealed = vault.seal({"k": "link", "t": tenant_id, "a": app, "c": connection_id}).decode()
    return f"{redirect_url(settings).removesuffix('/oauth/callback')}/oauth/start?link={sealed}"


def open_link(engine: Engine, vault: Vault, settings: Settings, link: str, now: float | None = None) -> str:
    """The consent URL, with a fresh state, for a link `connect_link` made; StateRefused when forged or old."""
    try:
        claims = vault.unseal(link.encode(), ttl=settings.oauth_link_ttl_seconds, now=now)
    except (InvalidToken, ValueError):
        raise StateRefused("this connect link is forged, altered or expired; ask for a new one") from None
    if not isinstance(claims, dict) or claims.get("k") != "link":
        raise StateRefused("this is not a connect link inlet issued")
    return start_connect(
        engine, vault, settings, tenant_id=claims["t"], app=claims["a"], connection_id=claims["c"], parameters={}
    )


def start_connect(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    *,
    tenant_id: str,
    app: str,
    connection_id: str,
    parameters: Mapping[str, str],
) -> str:
    """The consent URL for a tenant to connect an app; the connection is created (without tokens) if new."""
    spec = grant_spec(app, "authorization_code")
    connection = _ensure_connection(engine, settings, tenant_id, app, connection_id, parameters, spec)
    bound = bound_grant(settings, app, "authorization_code", connection.parameters)
    client = client_for(engine, vault, settings, app, vault.decrypt(connection.credentials_encrypted))
    nonce = secrets.token_urlsafe(24)
    verifier = pkce_verifier() if spec.pkce else None  # kept server-side, sealed, with the state's nonce
    sealed_verifier = vault.seal(verifier) if verifier else None
    stale = utcnow() - timedelta(seconds=settings.oauth_state_ttl_seconds * 2)  # their states cannot open anyway
    with Session(engine) as session:
        session.execute(delete(OAuthState).where(col(OAuthState.created_at) < stale))
        session.add(
            OAuthState(
                nonce=nonce,
                tenant_id=tenant_id,
                connection_id=connection_id,
                app=app,
                verifier_encrypted=sealed_verifier,
            )
        )
        session.commit()
    state = vault.seal({"n": nonce, "t": tenant_id, "c": connection_id, "a": app}).decode()
    return authorization_url(bound, client, state, verifier)


async def finish_connect(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    *,
    state: str,
    code: str,
    http: httpx.AsyncClient,
    now: float | None = None,
) -> Connected:
    """Check and spend the state, exchange the code and store the tokens on the connection."""
    claims = await asyncio.to_thread(spend_state, engine, vault, settings, state, now)
    app, connection_id = claims["a"], claims["c"]
    connection = await asyncio.to_thread(_connection_of, engine, claims["t"], connection_id, app)
    spec = bound_grant(settings, app, "authorization_code", connection.parameters)
    client = client_for(engine, vault, settings, app, vault.decrypt(connection.credentials_encrypted))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri}
    if claims.get("v"):
        form["code_verifier"] = claims["v"]
    tokens = await request_token(http, spec, client, form, connector=app)
    await asyncio.to_thread(_store, engine, vault, settings, connection_id, "authorization_code", spec, tokens)
    return Connected(claims["t"], connection_id, app)


def _connection_of(engine: Engine, tenant_id: str, connection_id: str, app: str) -> Connection:
    with Session(engine) as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.tenant_id != tenant_id or connection.app != app:
            raise StateRefused("the connection this sign-in was for no longer exists")
        session.expunge(connection)
        return connection


async def connect_app_only(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    *,
    tenant_id: str,
    app: str,
    connection_id: str,
    parameters: Mapping[str, str],
    http: httpx.AsyncClient,
) -> Connected:
    """Client credentials (Graph app-only): no sign-in, the token comes straight from the token endpoint."""
    connection = _ensure_connection(
        engine, settings, tenant_id, app, connection_id, parameters, grant_spec(app, "client_credentials")
    )
    spec = bound_grant(settings, app, "client_credentials", connection.parameters)
    client = client_for(engine, vault, settings, app, vault.decrypt(connection.credentials_encrypted))
    form = {"grant_type": "client_credentials", "scope": spec.scope_separator.join(spec.scopes)}
    tokens = await request_token(http, spec, client, form, connector=app)
    _store(engine, vault, settings, connection_id, "client_credentials", spec, tokens)
    return Connected(tenant_id, connection_id, app)


def oauth_auth(engine: Engine, vault: Vault, settings: Settings, loaded: LoadedConnection) -> OAuth2Auth | None:
    """The auth of a connection made with OAuth, or None; NeedsReauth (before any request) when it is flagged."""
    connection = loaded.connection
    row = read_tokens(engine, vault, connection.id)
    if row is None:
        return None
    source = StoredTokens(
        engine,
        vault,
        connection.id,
        bound_grant(settings, connection.app, row.grant, connection.parameters),
        client_for(engine, vault, settings, connection.app, loaded.credentials),
        connector=connection.app,
        http=lambda: token_client(settings),
    )
    if row.status != "active":
        raise NeedsReauth(reauth_message(connection.id, row.status_reason), connector=connection.app)
    return OAuth2Auth(source)


def spend_state(engine: Engine, vault: Vault, settings: Settings, state: str, now: float | None) -> dict[str, str]:
    try:
        claims = vault.unseal(state.encode(), ttl=settings.oauth_state_ttl_seconds, now=now)
    except (InvalidToken, ValueError):
        raise StateRefused("the sign-in link is forged, altered or expired; start again") from None
    if not isinstance(claims, dict) or not all(isinstance(claims.get(k), str) for k in "ntca"):
        raise StateRefused("the sign-in link is not one inlet issued; start again")
    with engine.begin() as db:
        spent = db.execute(
            update(OAuthState)
            .where(
                col(OAuthState.nonce) == claims["n"],
                col(OAuthState.tenant_id) == claims["t"],
                col(OAuthState.used_at).is_(None),
            )
            .values(used_at=utcnow())
        ).rowcount
    if not spent:
        raise StateRefused("this sign-in link was already used; start again")
    with Session(engine) as session:
        row = session.get(OAuthState, claims["n"])
        verifier = vault.unseal(row.verifier_encrypted) if row is not None and row.verifier_encrypted else ""
    return {**{k: str(claims[k]) for k in "ntca"}, "v": str(verifier)}


def _ensure_connection(
    engine: Engine,
    settings: Settings,
    tenant_id: str,
    app: str,
    connection_id: str,
    parameters: Mapping[str, str],
    spec: OAuth2Spec,
) -> Connection:
    """The tenant's connection with `parameters` merged in, created when new; checked against the connector."""
    with Session(engine) as session:
        if session.get(Tenant, tenant_id) is None:
            raise NotFound(f"no tenant {tenant_id!r}; add it first with `inlet tenants add {tenant_id}`")
        connection = session.get(Connection, connection_id)
        if connection is not None and (connection.tenant_id != tenant_id or connection.app != app):
            raise ConfigError(f"connection {connection_id!r} exists for another tenant or app")
        connection = connection or Connection(id=connection_id, tenant_id=tenant_id, app=app)
        merged = {**connection.parameters, **parameters}
        _check_parameters(app, merged, spec, settings)
        connection.parameters = merged
        session.add(connection)
        session.commit()
        session.refresh(connection)
        session.expunge(connection)
        return connection


def _check_parameters(app: str, parameters: Mapping[str, str], spec: OAuth2Spec, settings: Settings) -> None:
    """Known names and values that keep their rules; each required one given, unless the token will bring it
    (Salesforce's instance_url)."""
    declared = load(app)[0].parameters
    unknown = sorted(set(parameters) - set(declared) - RESERVED_PARAMETERS)
    if unknown:
        raise ConfigError(f"{app} has no parameters {unknown}; it takes {sorted(declared)}")
    later = set(spec.parameters_from_token)
    missing = sorted(n for n, p in declared.items() if p.default is None and n not in parameters and n not in later)
    if missing:
        raise ConfigError(f"{app} needs --param for {missing}")
    try:
        check_values(declared, parameters, settings.egress.policy(), connector=app)
    except InvalidParameter as exc:
        raise ConfigError(str(exc)) from None


def _store(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    connection_id: str,
    grant: Grant,
    spec: OAuth2Spec,
    tokens: TokenSet,
) -> None:
    """Keep the tokens, and the parameters the answer names, checked like a tenant's (the app is not trusted)."""
    extra = tokens.extra
    learned = {param: extra[field] for param, field in spec.parameters_from_token.items() if extra.get(field)}
    if learned:
        with Session(engine) as session:
            connection = session.get(Connection, connection_id)
            assert connection is not None
            try:
                declared = load(connection.app)[0].parameters
                learned = check_values(declared, learned, settings.egress.policy(), connector=connection.app)
            except InvalidParameter as exc:
                raise ConfigError(f"the sign-in answer names a parameter its connector refuses: {exc}") from None
            connection.parameters = {**connection.parameters, **learned}
            session.add(connection)
            session.commit()
    save_tokens(engine, vault, connection_id, grant, tokens)
