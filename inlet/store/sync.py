"""Sync policies: per connection, how often it is polled and reconciled, whether it runs, and where it stands.

What is due is derived from stored timestamps alone (`claim_due`), so a scheduler run that is lost or
crashes loses nothing: the next one finds the same connections due. A connection without a policy row gets
its connector's defaults (`sync:` in connector.yaml) the first time the scheduler looks, so adding a
connection, by any path, starts it: a full import first, then its change source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, delete, select, update

from connectors.registry import load
from inlet.errors import NotFound
from inlet.store.tables import Checkpoint, Connection, OAuthToken, SyncPolicy, SyncState, utcnow

__all__ = [
    "Due",
    "Work",
    "claim_due",
    "ensure_policies",
    "import_completed",
    "import_started",
    "poll_failed",
    "policy_for",
    "reconciled",
    "record_poll",
    "remove_connection",
    "request_work",
    "set_intervals",
    "set_state",
]

Work = Literal["import", "poll", "reconcile"]

IMPORT_RETRY = timedelta(hours=1)  # a submitted first import that never completed is submitted again after this
IMPORTS_IN_FLIGHT = 8  # first imports submitted and not done, at most: the rest wait for a later tick, behind no poll
IMPORT_IN_FLIGHT_FOR = timedelta(minutes=10)  # a submitted import stops counting as in flight after this


@dataclass(frozen=True)
class Due:
    """One piece of work the scheduler submits."""

    tenant: str
    connection: str
    data_source: str
    work: Work
    app: str = ""  # the connector; the scheduler batches one app's polls into one task run
    poll_seconds: int = 300  # the connection's poll interval: a poll's time limit derives from it


def ensure_policies(engine: Engine) -> int:
    """Give every connection without a policy its connector's defaults; returns how many were added.

    Runs of several connections call this at once: when another one adds the same rows first (a unique
    violation at commit), read again and add what is still missing."""
    for _ in range(5):
        try:
            return _add_missing_policies(engine)
        except IntegrityError:
            continue
    return _add_missing_policies(engine)


def _add_missing_policies(engine: Engine) -> int:
    with Session(engine) as session:
        known = set(session.exec(select(SyncPolicy.connection_id)).all())
        added = 0
        for c in session.exec(select(Connection)).all():
            if c.id in known:
                continue
            defaults = load(c.app)[0].sync
            checkpoint = session.get(Checkpoint, (c.id, c.data_source))
            session.add(
                SyncPolicy(
                    connection_id=c.id,
                    tenant_id=c.tenant_id,
                    data_source=c.data_source,
                    poll_seconds=defaults.poll_seconds,
                    reconcile_seconds=defaults.reconcile_seconds,
                    webhooks=defaults.webhooks,
                    imported_at=checkpoint.updated_at if checkpoint and checkpoint.complete else None,
                )
            )
            added += 1
        session.commit()
        return added


def policy_for(engine: Engine, tenant_id: str, connection_id: str) -> SyncPolicy:
    """The connection's policy (its connector's defaults when it has none yet)."""
    ensure_policies(engine)
    with Session(engine) as session:
        policy = session.get(SyncPolicy, connection_id)
        if policy is None or policy.tenant_id != tenant_id:
            raise NotFound(f"tenant {tenant_id!r} has no connection {connection_id!r}")
        return policy


def set_intervals(
    engine: Engine,
    tenant_id: str,
    connection_id: str,
    *,
    poll_seconds: int | None = None,
    reconcile_seconds: int | None = None,
    webhooks: bool | None = None,
) -> SyncPolicy:
    """Change what is given; the rest stays."""
    policy_for(engine, tenant_id, connection_id)
    with Session(engine) as session:
        policy = session.get_one(SyncPolicy, connection_id)
        if poll_seconds is not None:
            policy.poll_seconds = poll_seconds
        if reconcile_seconds is not None:
            policy.reconcile_seconds = reconcile_seconds
        if webhooks is not None:
            policy.webhooks = webhooks
        policy.updated_at = utcnow()
        session.add(policy)
        session.commit()
        session.refresh(policy)
        return policy


def set_state(engine: Engine, tenant_id: str, connection_id: str, state: str, reason: str | None = None) -> SyncPolicy:
    """active, paused or needs_reauth (the scheduler submits work only for active connections)."""
    policy_for(engine, tenant_id, connection_id)
    with Session(engine) as session:
        policy = session.get_one(SyncPolicy, connection_id)
        policy.state, policy.state_reason, policy.updated_at = state, reason, utcnow()
        session.add(policy)
        session.commit()
        session.refresh(policy)
        return policy


def claim_due(engine: Engine, now: datetime | None = None, max_imports: int = IMPORTS_IN_FLIGHT) -> list[Due]:
    """The work due now, stamped as submitted. Each stamp is a compare-and-set on the one read, so two
    schedulers ticking at once (one run ending as the next starts) never both claim a connection's work.
    First imports only while fewer than `max_imports` are in flight: a thousand new connections must not queue
    every poll behind them."""
    ensure_policies(engine)
    now = now or utcnow()
    due: list[Due] = []
    with Session(engine) as session:
        _reactivate_reconnected(session)
        apps = dict(session.exec(select(Connection.id, Connection.app)).all())
        policies = session.exec(select(SyncPolicy).where(SyncPolicy.state == "active")).all()
        imports = sum(1 for policy in policies if _importing(policy, now))
        for policy in policies:
            work = _work_due(policy, now)
            if work == "import" and imports >= max_imports:
                continue
            imports += work == "import"
            if work is not None and _claim(session, policy, work, now):
                due.append(
                    Due(
                        policy.tenant_id,
                        policy.connection_id,
                        policy.data_source,
                        work,
                        apps.get(policy.connection_id, ""),
                        policy.poll_seconds,
                    )
                )
        session.commit()
    return due


def _claim(session: Session, policy: SyncPolicy, work: Work, now: datetime) -> bool:
    """Stamp `work` as submitted unless another scheduler changed the stamp since this one read it."""
    stamp = getattr(SyncPolicy, f"{work}_submitted_at")
    read = getattr(policy, f"{work}_submitted_at")
    claimed = session.execute(
        update(SyncPolicy)
        .where(col(SyncPolicy.connection_id) == policy.connection_id)
        .where(stamp.is_(None) if read is None else stamp == read)
        .values({f"{work}_submitted_at": now, "requested_work": None})  # what was asked out of turn goes now
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(claimed, "rowcount", 0))


def _importing(policy: SyncPolicy, now: datetime) -> bool:
    """A first import submitted lately and not done yet."""
    submitted = _aware(policy.import_submitted_at)
    return policy.imported_at is None and submitted is not None and now - submitted < IMPORT_IN_FLIGHT_FOR


def _work_due(policy: SyncPolicy, now: datetime) -> Work | None:
    if policy.requested_work == "reconcile" and policy.imported_at is not None:
        return "reconcile"
    if policy.requested_work == "import":
        return "import"
    if policy.imported_at is None:
        submitted = _aware(policy.import_submitted_at)
        return "import" if submitted is None or now - submitted >= IMPORT_RETRY else None
    reconciled_at = _aware(policy.last_reconcile_at) or _aware(policy.imported_at)
    reconcile_submitted = _aware(policy.reconcile_submitted_at)
    every = timedelta(seconds=policy.reconcile_seconds)
    if reconciled_at is not None and now - reconciled_at >= every:
        if reconcile_submitted is None or now - reconcile_submitted >= every:
            return "reconcile"
    last = max(filter(None, (_aware(policy.poll_submitted_at), _aware(policy.imported_at))))
    return "poll" if now - last >= timedelta(seconds=policy.poll_seconds) else None


def request_work(
    engine: Engine, tenant_id: str, connection_id: str, work: Literal["import", "reconcile"]
) -> SyncPolicy:
    """Make a full import or a reconciliation due at the scheduler's next tick, whatever the intervals say (a
    paused connection gets it once resumed). Stored, so a scheduler that is down loses nothing."""
    policy_for(engine, tenant_id, connection_id)
    with Session(engine) as session:
        policy = session.get_one(SyncPolicy, connection_id)
        policy.requested_work, policy.requested_at, policy.updated_at = work, utcnow(), utcnow()
        session.add(policy)
        session.commit()
        session.refresh(policy)
        return policy


def _reactivate_reconnected(session: Session) -> None:
    """A connection paused as needs_reauth runs again once its grant was renewed after the pause."""
    waiting = session.exec(select(SyncPolicy).where(SyncPolicy.state == "needs_reauth")).all()
    for policy in waiting:
        token = session.get(OAuthToken, policy.connection_id)
        connection = session.get(Connection, policy.connection_id)
        renewed = token is not None and token.status == "active" and _later(token.updated_at, policy.updated_at)
        replaced = token is None and connection is not None and _later(connection.created_at, policy.updated_at)
        if renewed or replaced:
            policy.state, policy.state_reason, policy.updated_at = "active", None, utcnow()
            session.add(policy)


def import_started(engine: Engine, connection_id: str, position: str | None) -> None:
    """Keep the change source's position read before a full import enumerates (it applies once it completes)."""
    ensure_policies(engine)
    with Session(engine) as session:
        policy = session.get(SyncPolicy, connection_id)
        if policy is not None:
            policy.pending_since = position
            session.add(policy)
            session.commit()


def import_completed(engine: Engine, connection_id: str, data_source: str) -> None:
    """The full import enumerated everything: its position becomes the first poll's `since` (none: the first
    poll enumerates and diffs against the ledger)."""
    with Session(engine) as session:
        policy = session.get(SyncPolicy, connection_id)
        if policy is None:
            return
        state = session.get(SyncState, (connection_id, data_source)) or SyncState(
            connection_id=connection_id, data_source=data_source
        )
        if policy.pending_since is not None or policy.imported_at is None:
            state.since = policy.pending_since  # no position on a first import: the first poll enumerates and diffs
        policy.pending_since = None
        policy.imported_at = policy.imported_at or utcnow()
        session.add(state)
        session.add(policy)
        session.commit()


def record_poll(
    engine: Engine, connection_id: str, mode: str, newest_change: datetime | None, started: datetime | None = None
) -> None:
    """A poll finished; `last_poll_at` is when it started (now, when not given)."""
    with Session(engine) as session:
        policy = session.get(SyncPolicy, connection_id)
        if policy is not None:
            policy.last_poll_at, policy.last_poll_mode = started or utcnow(), mode
            policy.last_poll_error = policy.last_poll_error_at = None
            if newest_change is not None:
                policy.last_change_at = newest_change
            session.add(policy)
            session.commit()


def poll_failed(engine: Engine, connection_id: str, error: str) -> None:
    """A poll failed (an error, or past its time limit): why, until a poll goes through."""
    with Session(engine) as session:
        policy = session.get(SyncPolicy, connection_id)
        if policy is not None:
            policy.last_poll_error, policy.last_poll_error_at = error[:1000], utcnow()
            session.add(policy)
            session.commit()


def reconciled(engine: Engine, connection_id: str, drift: dict[str, int]) -> None:
    """A reconciliation finished: when, and what it found the change source had missed."""
    with Session(engine) as session:
        policy = session.get(SyncPolicy, connection_id)
        if policy is not None:
            policy.last_reconcile_at, policy.drift = utcnow(), drift
            session.add(policy)
            session.commit()


def remove_connection(engine: Engine, tenant_id: str, connection_id: str) -> None:
    """Stop a connection and forget it: every row of every table that names it goes, in one transaction."""
    with Session(engine) as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.tenant_id != tenant_id:
            raise NotFound(f"tenant {tenant_id!r} has no connection {connection_id!r}")
        for table in SQLModel.metadata.sorted_tables:
            if "connection_id" in table.c:
                session.execute(delete(table).where(table.c.connection_id == connection_id))
        session.delete(connection)
        session.commit()


def _later(first: datetime | None, second: datetime | None) -> bool:
    a, b = _aware(first), _aware(second)
    return a is not None and b is not None and a > b


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
