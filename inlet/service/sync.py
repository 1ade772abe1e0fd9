"""Sync policy operations the CLI and the API share: set a connection's intervals, pause, resume or remove it,
ask for a full import or a reconciliation out of turn, how each connection's continuity stands (change source,
polls, lag, last reconciliation and its drift). Each takes the Installation (poison inbox events: `poison.py`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from connectors.registry import load
from inlet.errors import ConfigError
from inlet.service.installation import Installation
from inlet.store import (
    Connection,
    SyncPolicy,
    WebhookSubscription,
    ensure_policies,
    policy_for,
    request_work,
    set_intervals,
)
from inlet.store import remove_connection as forget_connection
from inlet.store import set_state as set_sync_state

__all__ = [
    "change_source",
    "pause",
    "remove_connection",
    "request_import",
    "request_reconciliation",
    "resume",
    "set_policy",
    "sync_of",
    "sync_status",
]


def set_policy(
    inst: Installation,
    tenant_id: str,
    connection_id: str,
    *,
    poll_seconds: int | None = None,
    reconcile_seconds: int | None = None,
    webhooks: bool | None = None,
) -> SyncPolicy:
    """Change a connection's poll interval, reconciliation interval or webhooks; what is not given stays."""
    for name, value, least in (("poll interval", poll_seconds, 10), ("reconciliation interval", reconcile_seconds, 60)):
        if value is not None and value < least:
            raise ConfigError(f"the {name} must be at least {least} s, got {value}")
    return set_intervals(
        inst.engine,
        tenant_id,
        connection_id,
        poll_seconds=poll_seconds,
        reconcile_seconds=reconcile_seconds,
        webhooks=webhooks,
    )


def pause(inst: Installation, tenant_id: str, connection_id: str) -> SyncPolicy:
    """Stop submitting the connection's imports, polls and reconciliations (a run under way finishes)."""
    return set_sync_state(inst.engine, tenant_id, connection_id, "paused", "paused by the operator")


def resume(inst: Installation, tenant_id: str, connection_id: str) -> SyncPolicy:
    """Run the connection again; work that fell due while it was paused is submitted at the next tick."""
    return set_sync_state(inst.engine, tenant_id, connection_id, "active")


def request_reconciliation(inst: Installation, tenant_id: str, connection_id: str) -> SyncPolicy:
    """A reconciliation (a full sync diffed against the ledger, drift reported) at the scheduler's next tick."""
    return request_work(inst.engine, tenant_id, connection_id, "reconcile")


def request_import(inst: Installation, tenant_id: str, connection_id: str) -> SyncPolicy:
    """A full import at the scheduler's next tick, run by a task worker under the connection's single flight."""
    return request_work(inst.engine, tenant_id, connection_id, "import")


def remove_connection(inst: Installation, tenant_id: str, connection_id: str) -> None:
    """Stop the connection and delete it with everything the store keeps for it."""
    policy_for(inst.engine, tenant_id, connection_id)
    forget_connection(inst.engine, tenant_id, connection_id)


def change_source(connection: Connection, policy: SyncPolicy, subscription: WebhookSubscription | None = None) -> str:
    """The change source in use: `webhook` (with the subscription's expiry, when inlet made one) beside the polls'
    safety net, else `poll` (the app's incremental API) or `scan-diff` (enumerate and diff against the ledger);
    webhooks that are on but not working say why."""
    polled = _polled(connection)
    if not policy.webhooks or policy.state != "active":
        return polled
    if load(connection.app)[0].subscriptions is None:
        return f"webhook (set up by the operator) + {polled}"
    if subscription is None:
        return f"{polled} (webhook subscription not made yet)"
    if subscription.remote_id is None or subscription.state != "active":
        return f"{polled} (webhooks {subscription.state}: {subscription.reason})"
    expiry = f"expires {_when(subscription.expires_at)}" if subscription.expires_at else "no expiry"
    return f"webhook (subscription {subscription.remote_id}, {expiry}) + {polled}"


def _polled(connection: Connection) -> str:
    spec, hooks = load(connection.app)
    collection = spec.collections[connection.collection or spec.collection_for(connection.data_source)]
    return "poll" if collection.changes is not None or hooks.changes is not None else "scan-diff"


def sync_of(inst: Installation, tenant_id: str, connection_id: str) -> dict[str, Any]:
    """One connection's row of `sync_status` (NotFound when the tenant has no such connection)."""
    policy = policy_for(inst.engine, tenant_id, connection_id)
    with Session(inst.engine) as session:
        connection = session.get_one(Connection, connection_id)
        subscription = session.get(WebhookSubscription, connection_id)
    return _row(connection, policy, subscription, datetime.now(UTC))


def sync_status(inst: Installation, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """One row per connection: state, change source, last and next poll, lag, last reconciliation and drift."""
    ensure_policies(inst.engine)
    now = datetime.now(UTC)
    rows = []
    with Session(inst.engine) as session:
        query = select(Connection, SyncPolicy).where(Connection.id == SyncPolicy.connection_id)
        if tenant_id is not None:
            query = query.where(Connection.tenant_id == tenant_id)
        for connection, policy in session.exec(query.order_by(Connection.tenant_id, Connection.id)).all():
            rows.append(_row(connection, policy, session.get(WebhookSubscription, connection.id), now))
    return rows


def _row(
    connection: Connection, policy: SyncPolicy, subscription: WebhookSubscription | None, now: datetime
) -> dict[str, Any]:
    last_poll = _aware(policy.last_poll_at)
    started = max(filter(None, (_aware(policy.poll_submitted_at), _aware(policy.imported_at))), default=None)
    next_poll = started + timedelta(seconds=policy.poll_seconds) if started and policy.state == "active" else None
    return {
        "tenant": connection.tenant_id,
        "connection": connection.id,
        "app": connection.app,
        "state": policy.state + (f" ({policy.state_reason})" if policy.state_reason else ""),
        "change_source": change_source(connection, policy, subscription),
        "poll_every": policy.poll_seconds,
        "reconcile_every": policy.reconcile_seconds,
        "imported": _when(policy.imported_at),
        "last_poll": _when(last_poll) + (f" ({policy.last_poll_mode})" if policy.last_poll_mode else ""),
        "last_poll_error": _poll_error(policy),
        "next_poll": _when(next_poll) if policy.imported_at else "after the full import",
        "lag_seconds": round((now - last_poll).total_seconds(), 1) if last_poll else None,
        "last_reconcile": _when(policy.last_reconcile_at),
        "drift": policy.drift or {},
        "requested": policy.requested_work,
    }


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _poll_error(policy: SyncPolicy) -> str:
    """Why the last poll failed, and when ("-": it went through)."""
    return f"{_when(policy.last_poll_error_at)} {policy.last_poll_error}" if policy.last_poll_error else "-"


def _when(moment: datetime | None) -> str:
    aware = _aware(moment)
    return aware.astimezone(UTC).isoformat(timespec="seconds") if aware else "never"
