"""The team's OAuth apps at the external apps: one client (id and encrypted secret) per app, or a connection's
own (Zendesk accounts register their clients themselves), the grants each connector declares, bound to one
connection's checked parameters, and the HTTP client that calls their token endpoints (behind the egress guard).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from connectors.egress import guarded_transport
from connectors.errors import InvalidParameter
from connectors.oauth import Grant, OAuth2Spec, OAuthClient
from connectors.oauth_endpoints import bind_grant
from connectors.registry import available, load
from inlet.errors import ConfigError
from inlet.settings import Settings
from inlet.store import OAuthClientRow, Vault

__all__ = ["bound_grant", "client_for", "grant_spec", "redirect_url", "register_client", "token_client"]


def grant_spec(app: str, grant: Grant) -> OAuth2Spec:
    if app not in available():
        raise ConfigError(f"no connector {app!r}; available: {', '.join(available())}")
    spec = load(app)[0].oauth.get(grant)
    if spec is None:
        offered = ", ".join(load(app)[0].oauth) or "none"
        raise ConfigError(f"{app} does not offer the OAuth grant {grant} (it offers: {offered})")
    return spec


def bound_grant(settings: Settings, app: str, grant: Grant, parameters: Mapping[str, str]) -> OAuth2Spec:
    """The grant's endpoints for a connection: connector.yaml's hosts, or the operator's override for the app."""
    grant_spec(app, grant)
    try:
        return bind_grant(load(app)[0], grant, parameters, override=settings.oauth_endpoints.get(app))
    except InvalidParameter as exc:
        raise ConfigError(str(exc)) from None


def token_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client for token endpoints: behind the egress guard (a `transport` given stands in for the network)."""
    return httpx.AsyncClient(transport=transport or guarded_transport(settings.egress.policy()), timeout=30)


def register_client(engine: Engine, vault: Vault, app: str, client_id: str, client_secret: SecretStr) -> None:
    """Store (or replace) the team's OAuth client for an app; the secret is encrypted."""
    if app not in available() or not load(app)[0].oauth:
        raise ConfigError(f"{app!r} is not a connector with OAuth grants")
    with Session(engine) as session:
        row = session.get(OAuthClientRow, app) or OAuthClientRow(app=app, client_id="", client_secret_encrypted=b"")
        row.client_id = client_id
        row.client_secret_encrypted = vault.seal(client_secret.get_secret_value())
        session.add(row)
        session.commit()


def client_for(
    engine: Engine, vault: Vault, settings: Settings, app: str, credentials: Mapping[str, SecretStr]
) -> OAuthClient:
    """The connection's own client (credentials client_id/client_secret, as Zendesk accounts have), else the app's."""
    redirect = redirect_url(settings)
    if "client_id" in credentials and "client_secret" in credentials:
        return OAuthClient(
            client_id=credentials["client_id"].get_secret_value(),
            client_secret=credentials["client_secret"],
            redirect_uri=redirect,
        )
    with Session(engine) as session:
        row = session.get(OAuthClientRow, app)
        if row is None:
            raise ConfigError(
                f"no OAuth client for {app}: add one with "
                f"`inlet oauth clients add --app {app} --client-id ID --client-secret env:VAR`"
            )
        secret = SecretStr(str(vault.unseal(row.client_secret_encrypted)))
        return OAuthClient(client_id=row.client_id, client_secret=secret, redirect_uri=redirect)


def redirect_url(settings: Settings) -> str:
    return settings.oauth_redirect_url or f"http://127.0.0.1:{settings.receiver_port}/oauth/callback"
