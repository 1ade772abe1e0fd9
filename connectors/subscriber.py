"""Create, renew and delete one connection's webhook subscription, as its connector's `subscriptions:` says.

    made = await subscribe(connector, notification_url="https://inlet.example/webhooks/msgraph/acme/acme-graph",
                           tenant="acme", connection="acme-graph", now=datetime.now(UTC))
    made.id, made.expires_at, made.secret     # the secret is what verify_webhook checks; keep it in the vault
    made.expires_at = await renew(connector, made.id, now=...)     # SubscriptionGone: create a new one
    await unsubscribe(connector, made.id)     # False when the app had already forgotten it

Every call goes through the connector (its auth, origins, egress guard, retries and error tree). The secret
never reaches a message or a log line: the connector redacts its own credentials, and the secret is kept out
of every error this module raises.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalError, MalformedPage, SubscriptionGone
from connectors.paths import lookup
from connectors.redaction import redact
from connectors.subscriptions import SubscriptionCall, SubscriptionSpec, fill

__all__ = ["Subscribed", "renew", "subscribe", "subscription_spec", "unsubscribe"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscribed:
    """A subscription the app made: its id there, its expiry (None: never) and the secret webhooks prove."""

    id: str
    expires_at: datetime | None
    secret: SecretStr

    def __repr__(self) -> str:
        return f"Subscribed({self.id!r}, expires_at={self.expires_at!r}, secret=***)"


def subscription_spec(connector: Connector) -> SubscriptionSpec:
    spec = connector.spec.subscriptions
    if spec is None:
        raise FatalError(f"{connector.name} declares no `subscriptions:`; it is polled", connector=connector.name)
    return spec


async def subscribe(
    connector: Connector,
    *,
    notification_url: str,
    tenant: str,
    connection: str,
    now: datetime,
    lifetime_seconds: int | None = None,
) -> Subscribed:
    """Create the subscription; `lifetime_seconds` shortens the connector's (never lengthens it)."""
    spec = subscription_spec(connector)
    chosen = secrets.token_urlsafe(32)
    values = {"notification_url": notification_url, "secret": chosen, "tenant": tenant, "connection": connection}
    lifetime = _lifetime(spec, lifetime_seconds)
    if lifetime is not None:
        values["expires"] = _iso(now + timedelta(seconds=lifetime))
    async with _scrubbed(chosen):  # an app's error may echo the body, the secret in it
        body = await _call(connector, spec.create, values, "create")
    assert spec.create.id_path is not None  # the spec's validator requires it
    made_id = _text(connector, lookup(body, spec.create.id_path, None), "the subscription id")
    expires = _expiry(connector, body, spec.create) if lifetime is not None else None
    secret = chosen
    if spec.secret_from is not None:
        path = fill(spec.secret_from.path, {"subscription_id": made_id})
        answer = connector.read_json(await connector.send(connector.request("GET", path)), connector.redact(path))
        secret = _text(connector, lookup(answer, spec.secret_from.secret_path, None), "the signing secret")
    logger.info("%s: subscription %s created for %s/%s", connector.name, made_id, tenant, connection)
    return Subscribed(made_id, expires, SecretStr(fill(spec.verify_secret, {"secret": secret})))


async def renew(
    connector: Connector, subscription_id: str, *, now: datetime, lifetime_seconds: int | None = None
) -> datetime | None:
    """Extend the subscription; its new expiry. SubscriptionGone when the app no longer has it."""
    spec = subscription_spec(connector)
    lifetime = _lifetime(spec, lifetime_seconds)
    if spec.renew is None or lifetime is None:
        return None
    values = {"subscription_id": subscription_id, "expires": _iso(now + timedelta(seconds=lifetime))}
    body = await _call(connector, spec.renew, values, "renew", gone=spec.gone)
    logger.info("%s: subscription %s renewed", connector.name, subscription_id)
    return _expiry(connector, body, spec.renew) if spec.renew.expiry_path else now + timedelta(seconds=lifetime)


async def unsubscribe(connector: Connector, subscription_id: str) -> bool:
    """Delete the subscription; False when the app had already forgotten it."""
    spec = subscription_spec(connector)
    try:
        await _call(connector, spec.delete, {"subscription_id": subscription_id}, "delete", gone=spec.gone)
    except SubscriptionGone:
        return False
    logger.info("%s: subscription %s deleted", connector.name, subscription_id)
    return True


@asynccontextmanager
async def _scrubbed(secret: str) -> AsyncIterator[None]:
    """A connector error raised inside, with `secret` (in every encoding) masked in its message."""
    try:
        yield
    except ConnectorError as exc:
        exc.args = (redact(str(exc), [secret]), *exc.args[1:])
        raise


def _lifetime(spec: SubscriptionSpec, wanted: int | None) -> int | None:
    if spec.lifetime_seconds is None:
        return None
    return min(spec.lifetime_seconds, wanted) if wanted else spec.lifetime_seconds


async def _call(
    connector: Connector, call: SubscriptionCall, values: dict[str, str], what: str, gone: list[int] | None = None
) -> Any:
    """Send one call; its JSON answer (None when empty). SubscriptionGone for a `gone` status."""
    request = connector.request(call.method, fill(call.path, values), json=fill(call.json_body, values))
    response = await connector.send(request, accept=gone or [])
    if gone and response.status_code in gone:
        raise SubscriptionGone(
            f"{connector.name}: the subscription is gone (the {what} call answered {response.status_code})",
            connector=connector.name,
        )
    return _json(connector, response) if response.content else None


def _json(connector: Connector, response: httpx.Response) -> Any:
    return connector.read_json(response, connector.redact(str(response.request.url)))


def _expiry(connector: Connector, body: Any, call: SubscriptionCall) -> datetime:
    text = _text(connector, lookup(body, call.expiry_path or "", None), "the subscription's expiry")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPage(f"{connector.name}: the subscription's expiry {text[:40]!r} is not ISO-8601") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _text(connector: Connector, value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise MalformedPage(f"{connector.name}: the subscription API's answer lacks {what}", connector=connector.name)
    return str(value)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
