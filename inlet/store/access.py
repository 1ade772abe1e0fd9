"""Who may call inlet's API and pages, and what they did: API keys and connect sessions (only their SHA-256 is
stored), the audit log, and fixed-window counters for rate limits (in the store, so every replica shares them).

Keys and session tokens are 32 random bytes: a plain SHA-256 is enough to make a stolen table useless (a
slow password hash protects guessable secrets, and these are not guessable).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Engine, Index, Text, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from inlet.store.tables import utcnow

__all__ = [
    "ApiKey",
    "AuditEntry",
    "ConnectSession",
    "RateBucket",
    "audit_entries",
    "count_hit",
    "find_api_key",
    "find_session",
    "issue_api_key",
    "issue_session",
    "list_api_keys",
    "new_secret",
    "revoke_api_key",
    "secret_digest",
    "write_audit",
]


class ApiKey(SQLModel, table=True):
    """A key the team's backend calls the API with; `key_hash` is the SHA-256 of the key, shown once."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, description="public id, also the key's visible prefix")
    name: str
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    key_hash: str = Field(index=True, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ConnectSession(SQLModel, table=True):
    """A short-lived session for one tenant's browser, limited to some connectors; `token_hash` is a SHA-256."""

    __tablename__ = "connect_session"

    id: str = Field(primary_key=True, description="public id, for the audit log")
    token_hash: str = Field(index=True, unique=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    connectors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parameters: dict[str, dict[str, str]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False), description="per connector, set by the backend"
    )
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class AuditEntry(SQLModel, table=True):
    """One change made through the API or the pages: who, what, when, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant", "tenant_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(description="api_key:<id>, session:<id> or cli")
    action: str = Field(description="method and route, e.g. POST /api/tenants/{tenant}/connections")
    tenant_id: str | None = None
    target: str | None = Field(default=None, sa_column=Column(Text))
    status: int


class RateBucket(SQLModel, table=True):
    """How many attempts one key made in one fixed window."""

    __tablename__ = "rate_bucket"

    key: str = Field(primary_key=True)
    window: int = Field(primary_key=True, description="window start, epoch seconds")
    count: int = 0


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_api_key(engine: Engine, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
    """A new key row and the key itself (the only time it exists in clear)."""
    key_id = secrets.token_hex(4)
    key = f"ik_{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(id=key_id, name=name, scopes=list(scopes), key_hash=secret_digest(key))
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
        session.expunge(row)
    return row, key


def find_api_key(engine: Engine, key: str) -> ApiKey | None:
    """The live key row for a presented key (its last use noted), or None."""
    digest = secret_digest(key)
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(col(ApiKey.key_hash) == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        row.last_used_at = utcnow()
        session.add(row)
        session.commit()
        session.refresh(row)
        session.expunge(row)
        return row


def list_api_keys(engine: Engine, *, after: str | None = None, limit: int = 100) -> list[ApiKey]:
    with Session(engine) as session:
        query = select(ApiKey).order_by(col(ApiKey.id)).limit(limit)
        if after is not None:
            query = query.where(col(ApiKey.id) > after)
        return list(session.exec(query))


def revoke_api_key(engine: Engine, key_id: str) -> bool:
    with engine.begin() as db:
        done: int = db.execute(
            update(ApiKey).where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None)).values(revoked_at=utcnow())
        ).rowcount
    return done > 0


def issue_session(
    engine: Engine,
    *,
    tenant_id: str,
    connectors: Sequence[str],
    parameters: dict[str, dict[str, str]],
    created_by: str,
    ttl_seconds: float,
) -> tuple[ConnectSession, str]:
    """A new connect session and its token (shown once); expired sessions are cleared on the way."""
    token = new_secret("cs")
    now = utcnow()
    row = ConnectSession(
        id=secrets.token_hex(6),
        token_hash=secret_digest(token),
        tenant_id=tenant_id,
        connectors=list(connectors),
        parameters=parameters,
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    with Session(engine) as session:
        session.execute(delete(ConnectSession).where(col(ConnectSession.expires_at) < now - timedelta(days=1)))
        session.add(row)
        session.commit()
        session.refresh(row)
        session.expunge(row)
    return row, token


def find_session(engine: Engine, token: str) -> ConnectSession | None:
    """The session of a presented token, expired ones included (the caller says why it is refused)."""
    with Session(engine) as session:
        row = session.exec(select(ConnectSession).where(col(ConnectSession.token_hash) == secret_digest(token))).first()
        if row is not None:
            session.expunge(row)
        return row


def write_audit(
    engine: Engine, *, actor: str, action: str, tenant_id: str | None, target: str | None, status: int
) -> None:
    with Session(engine) as session:
        session.add(AuditEntry(actor=actor, action=action, tenant_id=tenant_id, target=target, status=status))
        session.commit()


def audit_entries(
    engine: Engine, *, tenant_id: str | None = None, before: int | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Newest first."""
    with Session(engine) as session:
        query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(col(AuditEntry.tenant_id) == tenant_id)
        if before is not None:
            query = query.where(col(AuditEntry.id) < before)
        return list(session.exec(query))


def count_hit(engine: Engine, key: str, window_seconds: int, now: float) -> int:
    """Count one attempt of `key` in the current fixed window; the attempts so far in it, this one included."""
    window = int(now) - int(now) % window_seconds
    where: list[Any] = [col(RateBucket.key) == key, col(RateBucket.window) == window]
    for _ in range(3):
        with engine.begin() as db:
            if db.execute(update(RateBucket).where(*where).values(count=RateBucket.count + 1)).rowcount:
                count: int = db.execute(select(RateBucket.count).where(*where)).scalar_one()
                db.execute(delete(RateBucket).where(col(RateBucket.window) < window - 3600))
                return count
        try:
            with Session(engine) as session:
                session.add(RateBucket(key=key, window=window, count=1))
                session.commit()
            return 1
        except IntegrityError:  # another request made the row first: count on it
            continue
    raise RuntimeError("the rate counter could not be updated")
