"""Connections: a tenant's accounts in external apps. Credentials are checked with a read-only request (the
first page of the users collection) before anything is saved, unless the caller says not to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from pydantic import SecretStr
from sqlmodel import Session, col, select

from connectors.errors import AuthError, ConnectorError
from connectors.registry import load, open_connector
from connectors.spec import RetryPolicy
from inlet.errors import ConfigError, CredentialsRefused, InletError
from inlet.oauth import TokenRow, client_for, connect_link, read_tokens, start_connect
from inlet.oauth import connect_app_only as _connect_app_only
from inlet.oauth.clients import token_client
from inlet.service.access import Principal, authorize
from inlet.service.installation import Installation
from inlet.service.paging import Page, checked_limit, decode_cursor, page_of
from inlet.service.subscriptions import drop_subscription
from inlet.service.tenants import require_tenant
from inlet.store import (
    Connection,
    OAuthToken,
    add_connection,
    check_connection_input,
    load_connection,
    remove_connection,
)
from inlet.store import list_connections as store_connections

__all__ = [
    "ConnectionView",
    "check_credentials",
    "create_connection",
    "delete_connection",
    "describe_connection",
    "connect_app_only",
    "connect_with_credentials",
    "list_connections",
    "oauth_available",
    "oauth_link",
    "oauth_tokens",
    "start_oauth",
]

logger = logging.getLogger(__name__)

_CHECK_RETRY = RetryPolicy(attempts=2, backoff_seconds=0.2, max_backoff_seconds=1.0, max_wait_seconds=5.0)


@dataclass(frozen=True)
class ConnectionView:
    """A connection as callers may see it: credential names, never their values."""

    id: str
    tenant: str
    app: str
    data_source: str
    parameters: dict[str, str]
    credential_names: list[str]
    auth: str
    auth_reason: str | None
    created_at: datetime


def create_connection(
    inst: Installation,
    *,
    tenant_id: str,
    connection_id: str,
    app: str,
    parameters: Mapping[str, str],
    credentials: Mapping[str, SecretStr],
    replace: bool = False,
    check: bool = True,
) -> ConnectionView:
    """Check the input, then (unless `check=False`, or the connection waits for its OAuth sign-in) the credentials
    against the app, then save."""
    require_tenant(inst, tenant_id)
    egress = inst.settings.egress.policy()
    parameters = check_connection_input(app, parameters, egress=egress)
    if check and not awaits_sign_in(app, credentials):
        check_credentials(inst, app, parameters, credentials)
    add_connection(
        inst.engine,
        inst.vault,
        tenant_id=tenant_id,
        connection_id=connection_id,
        app=app,
        parameters=parameters,
        credentials=credentials,
        replace=replace,
        egress=egress,
    )
    return describe_connection(inst, tenant_id, connection_id)


def connect_with_credentials(
    inst: Installation,
    principal: Principal,
    *,
    tenant: str,
    app: str,
    connection_id: str | None,
    parameters: Mapping[str, str],
    credentials: Mapping[str, SecretStr],
    replace: bool = False,
    check: bool = True,
) -> ConnectionView:
    """`create_connection` for a caller: a connect session may connect only its allowed connectors, its
    backend-set parameters win over the caller's, and it always checks the credentials."""
    authorize(principal, "write", tenant=tenant, connector=app if principal.kind == "session" else None)
    preset = principal.parameters.get(app, {}) if principal.kind == "session" else {}
    return create_connection(
        inst,
        tenant_id=tenant,
        connection_id=connection_id or f"{tenant}-{app}",
        app=app,
        parameters={**parameters, **preset},
        credentials=credentials,
        replace=replace,
        check=check or principal.kind == "session",
    )


def awaits_sign_in(app: str, credentials: Mapping[str, SecretStr]) -> bool:
    """An OAuth connection added before its sign-in (its own client's id and secret, say): nothing can be read
    until `inlet connections connect` brings the grant, which the sign-in itself then proves."""
    spec, _ = load(app)
    return "authorization_code" in spec.oauth and any(key not in credentials for key in spec.auth.required_keys())


def check_credentials(
    inst: Installation, app: str, parameters: Mapping[str, str], credentials: Mapping[str, SecretStr]
) -> None:
    """Read the first page of the app's users; CredentialsRefused saying why when that fails."""
    spec, _ = load(app)
    collection = spec.collection_for("users")

    async def first_page() -> None:
        retry = inst.settings.source_retry or _CHECK_RETRY
        egress = inst.settings.egress.policy()
        async with open_connector(
            app, parameters=parameters, credentials=credentials, retry=retry, egress=egress
        ) as connector:
            async for _ in connector.pages(collection):
                return

    try:
        asyncio.run(first_page())
    except AuthError:
        raise CredentialsRefused(f"{spec.title} refused these credentials; check them (nothing was saved)") from None
    except ConnectorError as exc:
        raise CredentialsRefused(
            f"could not check the credentials with {spec.title}: {_redacted(str(exc), credentials)} (nothing was saved)"
        ) from None


def _redacted(text: str, credentials: Mapping[str, SecretStr]) -> str:
    for value in credentials.values():
        secret = value.get_secret_value()
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def describe_connection(inst: Installation, tenant_id: str, connection_id: str) -> ConnectionView:
    loaded = load_connection(inst.engine, inst.vault, tenant_id, connection_id)
    return _view(inst, loaded.connection, sorted(loaded.credentials))


def list_connections(
    inst: Installation, tenant_id: str, *, cursor: str | None = None, limit: int = 100
) -> Page[ConnectionView]:
    require_tenant(inst, tenant_id)
    after = cast(str | None, decode_cursor(cursor, str))
    with Session(inst.engine) as session:
        query = (
            select(Connection)
            .where(col(Connection.tenant_id) == tenant_id)
            .order_by(col(Connection.id))
            .limit(checked_limit(limit) + 1)
        )
        if after is not None:
            query = query.where(col(Connection.id) > after)
        rows = list(session.exec(query))
    views = [_view(inst, c, sorted(inst.vault.decrypt(c.credentials_encrypted))) for c in rows]
    return page_of(views, limit, lambda v: v.id)


def delete_connection(inst: Installation, tenant_id: str, connection_id: str) -> None:
    """Remove the connection and everything kept for it (NotFound when the tenant has no such connection)."""
    require_tenant(inst, tenant_id)
    for connection in store_connections(inst.engine, tenant_id):
        if connection.id == connection_id:
            _unsubscribe(inst, connection)
    remove_connection(inst.engine, tenant_id, connection_id)


def _unsubscribe(inst: Installation, connection: Connection) -> None:
    """Delete the connection's webhook subscription at its app; when the app cannot be reached, say so and go on
    (the app stops on its own: Graph's expires, Pipedrive drops a webhook that fails for 3 days)."""
    try:
        asyncio.run(drop_subscription(inst.engine, inst.vault, inst.settings, connection))
    except (ConnectorError, InletError) as exc:
        logger.warning(
            "%s: its webhook subscription could not be deleted at %s: %s", connection.id, connection.app, exc
        )


def start_oauth(
    inst: Installation, *, tenant_id: str, app: str, connection_id: str, parameters: Mapping[str, str]
) -> str:
    """The app's consent URL for this tenant; the callback (`/oauth/callback`) stores the tokens."""
    require_tenant(inst, tenant_id)
    return start_connect(
        inst.engine,
        inst.vault,
        inst.settings,
        tenant_id=tenant_id,
        app=app,
        connection_id=connection_id,
        parameters=parameters,
    )


def oauth_available(inst: Installation, app: str) -> bool:
    """Whether a tenant can connect `app` by OAuth here: the app has the grant and the operator registered a client."""
    if "authorization_code" not in load(app)[0].oauth:
        return False
    try:
        client_for(inst.engine, inst.vault, inst.settings, app, {})
    except ConfigError:
        return False
    return True


def oauth_link(inst: Installation, *, tenant_id: str, app: str, connection_id: str) -> str:
    """A reusable link to `/oauth/start` that serves this connection's consent URL until it expires."""
    require_tenant(inst, tenant_id)
    return connect_link(inst.vault, inst.settings, tenant_id=tenant_id, app=app, connection_id=connection_id)


def connect_app_only(
    inst: Installation, *, tenant_id: str, app: str, connection_id: str, parameters: Mapping[str, str]
) -> None:
    """Client credentials (Graph app-only): the token comes straight from the app's token endpoint."""

    async def fetch() -> None:
        async with token_client(inst.settings) as http:
            await _connect_app_only(
                inst.engine,
                inst.vault,
                inst.settings,
                tenant_id=tenant_id,
                app=app,
                connection_id=connection_id,
                parameters=parameters,
                http=http,
            )

    asyncio.run(fetch())


def oauth_tokens(inst: Installation, tenant_id: str, connection_id: str) -> TokenRow | None:
    """A connection's OAuth state (tokens included: for the operator's masked view only), or None."""
    load_connection(inst.engine, inst.vault, tenant_id, connection_id)
    return read_tokens(inst.engine, inst.vault, connection_id)


def _view(inst: Installation, connection: Connection, credential_names: list[str]) -> ConnectionView:
    with Session(inst.engine) as session:
        token = session.get(OAuthToken, connection.id)
    return ConnectionView(
        id=connection.id,
        tenant=connection.tenant_id,
        app=connection.app,
        data_source=connection.data_source,
        parameters=dict(connection.parameters),
        credential_names=credential_names,
        auth=f"oauth:{token.status}" if token else "credentials",
        auth_reason=token.status_reason if token else None,
        created_at=connection.created_at,
    )
