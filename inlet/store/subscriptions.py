"""Webhook subscriptions per connection: what the app made (id, expiry), the secret its webhooks prove (sealed in
the vault, never in a log or a message), its state, and a lifecycle event heard but not yet acted on.

The scheduler's tick reads these rows to decide what to create, renew, re-create or delete; the receiver reads
the secret to verify a webhook and writes the lifecycle events it hears.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, select

from inlet.store.tables import WebhookSubscription, utcnow
from inlet.store.vault import Vault

__all__ = [
    "forget_subscription",
    "list_subscriptions",
    "note_lifecycle",
    "save_subscription",
    "subscription_of",
    "subscription_problem",
    "subscription_renewed",
    "subscription_secret",
    "take_lifecycle",
]


def subscription_of(engine: Engine, connection_id: str) -> WebhookSubscription | None:
    with Session(engine) as session:
        row = session.get(WebhookSubscription, connection_id)
        if row is not None:
            session.expunge(row)
        return row


def list_subscriptions(engine: Engine) -> list[WebhookSubscription]:
    with Session(engine) as session:
        rows = list(session.exec(select(WebhookSubscription)).all())
        for row in rows:
            session.expunge(row)
        return rows


def save_subscription(
    engine: Engine,
    vault: Vault,
    *,
    tenant_id: str,
    connection_id: str,
    app: str,
    remote_id: str,
    expires_at: datetime | None,
    secret: SecretStr,
) -> None:
    """Record a subscription the app just made (replacing what was kept for the connection)."""
    with Session(engine) as session:
        row = session.get(WebhookSubscription, connection_id) or WebhookSubscription(
            connection_id=connection_id, tenant_id=tenant_id, app=app
        )
        row.remote_id, row.expires_at, row.state, row.reason, row.lifecycle = (
            remote_id,
            expires_at,
            "active",
            None,
            None,
        )
        row.secret_encrypted = vault.seal(secret.get_secret_value())
        row.created_at = row.updated_at = utcnow()
        row.renewed_at = None
        session.add(row)
        session.commit()


def subscription_renewed(engine: Engine, connection_id: str, expires_at: datetime | None) -> None:
    with Session(engine) as session:
        row = session.get(WebhookSubscription, connection_id)
        if row is not None:
            row.expires_at, row.renewed_at, row.updated_at = expires_at, utcnow(), utcnow()
            row.state, row.reason = "active", None
            session.add(row)
            session.commit()


def subscription_problem(
    engine: Engine, *, tenant_id: str, connection_id: str, app: str, state: str, reason: str
) -> None:
    """Keep why the connection has no working subscription (`unavailable`, `failed`); a made one stays recorded."""
    with Session(engine) as session:
        row = session.get(WebhookSubscription, connection_id) or WebhookSubscription(
            connection_id=connection_id, tenant_id=tenant_id, app=app
        )
        row.state, row.reason, row.updated_at = state, reason[:500], utcnow()
        session.add(row)
        session.commit()


def forget_subscription(engine: Engine, connection_id: str) -> None:
    with Session(engine) as session:
        row = session.get(WebhookSubscription, connection_id)
        if row is not None:
            session.delete(row)
            session.commit()


def subscription_secret(engine: Engine, vault: Vault, connection_id: str) -> SecretStr | None:
    """The secret the connection's subscription webhooks prove; None without a made subscription."""
    row = subscription_of(engine, connection_id)
    if row is None or row.remote_id is None or row.secret_encrypted is None:
        return None
    return SecretStr(str(vault.unseal(row.secret_encrypted)))


def note_lifecycle(engine: Engine, connection_id: str, event: str, remote_id: str) -> bool:
    """Keep a lifecycle event for the scheduler; False (nothing kept) when it names another subscription.
    `subscriptionRemoved` outranks `reauthorizationRequired`, which outranks `missed` (a new subscription
    starts with a resync)."""
    rank = {"missed": 1, "reauthorizationRequired": 2, "subscriptionRemoved": 3}
    with Session(engine) as session:
        row = session.get(WebhookSubscription, connection_id)
        if row is None or row.remote_id != remote_id:
            return False
        if rank.get(event, 0) > rank.get(row.lifecycle or "", 0):
            row.lifecycle, row.updated_at = event, utcnow()
            session.add(row)
            session.commit()
        return True


def take_lifecycle(engine: Engine, connection_id: str) -> str | None:
    """The pending lifecycle event, cleared in the same transaction (the caller acts on it once)."""
    with Session(engine) as session:
        row = session.get(WebhookSubscription, connection_id)
        if row is None or row.lifecycle is None:
            return None
        event, row.lifecycle = row.lifecycle, None
        session.add(row)
        session.commit()
        return event
