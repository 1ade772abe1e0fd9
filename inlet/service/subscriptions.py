"""Webhook subscriptions kept in step with each connection's sync policy, one tick at a time.

A connection whose connector declares `subscriptions:` gets one at its app while it is active with webhooks on
and the installation has a public receiver URL (INLET_RECEIVER__PUBLIC_URL); without that URL the connection is
polled and its row says webhooks are unavailable. Paused, webhooks off or removed: the subscription is deleted at
the app. What the scheduler's tick does (`maintain_subscriptions`), from the store alone:

    no subscription, wanted            create it (Graph first validates the receiver URL)
    expiry within renew_before         renew it; the app forgot it (SubscriptionGone): create a new one
    lifecycle reauthorizationRequired  renew it
    lifecycle subscriptionRemoved      create a new one, and resync (notifications may have been lost)
    lifecycle missed                   resync: a poll from the connection's last position
    not wanted                         delete it at the app, forget it

A resync is returned as `Due` poll work for the scheduler to submit. A failure is kept on the row (`failed`, with
the connector's redacted message) and tried again at the next tick; a lifecycle event it was acting on is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import Engine
from sqlmodel import Session, select

from connectors.base import Connector
from connectors.errors import ConnectorError, SubscriptionGone
from connectors.registry import load, open_connector
from connectors.subscriber import renew, subscribe, unsubscribe
from inlet.errors import InletError
from inlet.oauth import oauth_auth
from inlet.settings import Settings
from inlet.store import (
    Connection,
    Due,
    SyncPolicy,
    Vault,
    WebhookSubscription,
    ensure_policies,
    forget_subscription,
    list_subscriptions,
    load_connection,
    note_lifecycle,
    save_subscription,
    subscription_of,
    subscription_problem,
    subscription_renewed,
    take_lifecycle,
    utcnow,
)

__all__ = ["NO_PUBLIC_URL", "SubscriptionTick", "drop_subscription", "maintain_subscriptions", "notification_url"]

logger = logging.getLogger(__name__)

NO_PUBLIC_URL = "no public receiver URL (set INLET_RECEIVER__PUBLIC_URL); the connection is polled"
RENEW_SHARE = 0.9  # renew once this share of a lifetime is left at most, so short lifetimes renew too


@dataclass
class SubscriptionTick:
    """What one tick did; `resyncs` are polls for the scheduler to submit."""

    created: int = 0
    renewed: int = 0
    deleted: int = 0
    failed: int = 0
    resyncs: list[Due] = field(default_factory=list)


def notification_url(settings: Settings, connection: Connection) -> str | None:
    """Where the app sends the connection's webhooks; None without a public receiver URL."""
    base = settings.receiver.public_url
    if base is None:
        return None
    parts = (connection.app, connection.tenant_id, connection.id)
    return base.rstrip("/") + "/webhooks/" + "/".join(quote(p, safe="") for p in parts)


async def maintain_subscriptions(
    engine: Engine, vault: Vault, settings: Settings, now: datetime | None = None
) -> SubscriptionTick:
    """Bring every connection's subscription in line with its policy (see the module's table)."""
    ensure_policies(engine)
    now = now or utcnow()
    tick = SubscriptionTick()
    rows = {row.connection_id: row for row in list_subscriptions(engine)}
    with Session(engine) as session:
        pairs = session.exec(select(Connection, SyncPolicy).where(Connection.id == SyncPolicy.connection_id)).all()
        for connection, _ in pairs:
            session.expunge(connection)
    for connection, policy in pairs:
        if load(connection.app)[0].subscriptions is None or policy.state == "needs_reauth":
            continue  # a revoked grant can neither renew nor delete; it is acted on once connected again
        wanted = policy.state == "active" and policy.webhooks
        try:
            await _maintain(engine, vault, settings, connection, wanted, rows.get(connection.id), now, tick)
        except (ConnectorError, InletError) as exc:
            tick.failed += 1
            logger.warning("%s: its webhook subscription could not be kept up: %s", connection.id, exc)
            subscription_problem(
                engine, tenant_id=connection.tenant_id, connection_id=connection.id, app=connection.app,
                state="failed", reason=str(exc),
            )  # fmt: skip
    return tick


async def drop_subscription(engine: Engine, vault: Vault, settings: Settings, connection: Connection) -> bool:
    """Delete the connection's subscription at its app and forget it; False when there was none to delete."""
    row = subscription_of(engine, connection.id)
    if row is None:
        return False
    if row.remote_id is not None:
        async with _open(engine, vault, settings, connection) as connector:
            await unsubscribe(connector, row.remote_id)
    forget_subscription(engine, connection.id)
    return row.remote_id is not None


async def _maintain(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    connection: Connection,
    wanted: bool,
    row: WebhookSubscription | None,
    now: datetime,
    tick: SubscriptionTick,
) -> None:
    if not wanted:
        if row is not None:
            tick.deleted += await drop_subscription(engine, vault, settings, connection)
        return
    url = notification_url(settings, connection)
    if url is None:
        if row is None or row.reason != NO_PUBLIC_URL:
            subscription_problem(
                engine, tenant_id=connection.tenant_id, connection_id=connection.id, app=connection.app,
                state="unavailable", reason=NO_PUBLIC_URL,
            )  # fmt: skip
        return
    event = take_lifecycle(engine, connection.id) if row is not None else None
    try:
        await _step(engine, vault, settings, connection, url, row, event, now, tick)
    except BaseException:
        if event is not None and row is not None and row.remote_id is not None:
            note_lifecycle(engine, connection.id, event, row.remote_id)  # act on it at the next tick
        raise


async def _step(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    connection: Connection,
    url: str,
    row: WebhookSubscription | None,
    event: str | None,
    now: datetime,
    tick: SubscriptionTick,
) -> None:
    made = row is not None and row.remote_id is not None
    if event == "missed" or event == "subscriptionRemoved":
        tick.resyncs.append(Due(connection.tenant_id, connection.id, connection.data_source, "poll"))
    async with _open(engine, vault, settings, connection) as connector:
        if row is None or row.remote_id is None or event == "subscriptionRemoved":
            await _create(engine, vault, settings, connector, connection, url, now)
            tick.created += 1
            return
        if event == "reauthorizationRequired" or _renewal_due(connector, row, settings, now):
            try:
                expires = await renew(connector, row.remote_id, now=now, lifetime_seconds=_lifetime(settings))
            except SubscriptionGone:
                await _create(engine, vault, settings, connector, connection, url, now)
                tick.created += 1
                if made:
                    tick.resyncs.append(Due(connection.tenant_id, connection.id, connection.data_source, "poll"))
                return
            subscription_renewed(engine, connection.id, expires)
            tick.renewed += 1


async def _create(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    connector: Connector,
    connection: Connection,
    url: str,
    now: datetime,
) -> None:
    made = await subscribe(
        connector,
        notification_url=url,
        tenant=connection.tenant_id,
        connection=connection.id,
        now=now,
        lifetime_seconds=_lifetime(settings),
    )
    save_subscription(
        engine,
        vault,
        tenant_id=connection.tenant_id,
        connection_id=connection.id,
        app=connection.app,
        remote_id=made.id,
        expires_at=made.expires_at,
        secret=made.secret,
    )


def _renewal_due(connector: Connector, row: WebhookSubscription, settings: Settings, now: datetime) -> bool:
    spec = connector.spec.subscriptions
    if row.expires_at is None or spec is None or spec.lifetime_seconds is None:
        return False
    lifetime = min(spec.lifetime_seconds, _lifetime(settings) or spec.lifetime_seconds)
    before = min(spec.renew_before_seconds, RENEW_SHARE * lifetime)
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    return expires - now <= timedelta(seconds=before)


def _lifetime(settings: Settings) -> int | None:
    return settings.receiver.subscription_seconds


def _open(engine: Engine, vault: Vault, settings: Settings, connection: Connection) -> Connector:
    """The connection's connector, with its OAuth grant when it has one (NeedsReauth when that was revoked)."""
    loaded = load_connection(engine, vault, connection.tenant_id, connection.id)
    return open_connector(
        connection.app,
        parameters=loaded.connection.parameters,
        credentials=loaded.credentials,
        retry=settings.source_retry,
        auth=oauth_auth(engine, vault, settings, loaded),
        egress=settings.egress.policy(),
    )
