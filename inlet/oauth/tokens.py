"""A connection's OAuth tokens in the store, and the token source that refreshes them for a run.

Refreshing is guarded twice. Inside one process an asyncio lock per connection lets one task refresh
while the others wait and then take its token. Across processes (two runs of one connection on two
workers) a lease in the `oauth_token` row does the same: the holder calls the token endpoint, the others
poll the row until its version moves. The write itself is a compare-and-swap on that version, so a
refresh that lost a race (its lease lapsed mid-call) never overwrites a newer token; it adopts the
newer one instead. `invalid_grant` marks the connection `needs_reauth`, and from then on no run calls
the token endpoint for it until the tenant connects again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col

from connectors.egress import EgressPolicy, guarded_transport
from connectors.errors import NeedsReauth
from connectors.oauth import Grant, InvalidGrant, OAuth2Spec, OAuthClient, TokenSet, request_token
from inlet.errors import NotFound
from inlet.store import OAuthToken, Vault, utcnow

__all__ = [
    "StoredTokens",
    "TokenRow",
    "mark_needs_reauth",
    "read_tokens",
    "reauth_message",
    "save_tokens",
    "swap_tokens",
]

logger = logging.getLogger(__name__)

# One lock per connection per event loop (an asyncio.Lock belongs to one loop; runs may each start their own).
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class TokenRow:
    """A decrypted `oauth_token` row."""

    connection_id: str
    grant: Grant
    version: int
    tokens: TokenSet
    status: str
    status_reason: str | None
    refreshes: int

    def __repr__(self) -> str:
        return f"TokenRow({self.connection_id!r}, v{self.version}, {self.status}, tokens=***)"


def read_tokens(engine: Engine, vault: Vault, connection_id: str) -> TokenRow | None:
    with Session(engine) as session:
        row = session.get(OAuthToken, connection_id)
        if row is None:
            return None
        tokens = TokenSet.model_validate(vault.unseal(row.tokens_encrypted))
        grant: Grant = "client_credentials" if row.grant == "client_credentials" else "authorization_code"
        return TokenRow(row.connection_id, grant, row.version, tokens, row.status, row.status_reason, row.refreshes)


def save_tokens(engine: Engine, vault: Vault, connection_id: str, grant: Grant, tokens: TokenSet) -> int:
    """Store fresh tokens from a connect (a new version, status active, the lease cleared); the new version."""
    with Session(engine) as session:
        row = session.get(OAuthToken, connection_id)
        if row is None:
            row = OAuthToken(connection_id=connection_id, grant=grant, tokens_encrypted=b"", version=0)
        row.grant, row.tokens_encrypted = grant, vault.seal(tokens.to_json())
        row.version += 1
        row.expires_at, row.status, row.status_reason = tokens.expires_at, "active", None
        row.lease_owner = row.lease_until = None
        row.updated_at = utcnow()
        session.add(row)
        session.commit()
        return row.version


def swap_tokens(engine: Engine, vault: Vault, connection_id: str, expected: int, tokens: TokenSet) -> bool:
    """Compare-and-swap: write refreshed tokens only if the row is still at version `expected`."""
    table = OAuthToken.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__
    with engine.begin() as db:
        result = db.execute(
            update(table)
            .where(table.c.connection_id == connection_id, table.c.version == expected, table.c.status == "active")
            .values(
                tokens_encrypted=vault.seal(tokens.to_json()),
                version=expected + 1,
                expires_at=tokens.expires_at,
                lease_owner=None,
                lease_until=None,
                refreshes=table.c.refreshes + 1,
                updated_at=utcnow(),
            )
        )
    return bool(result.rowcount)


def mark_needs_reauth(engine: Engine, connection_id: str, expected: int, reason: str) -> bool:
    """Flag the connection, unless someone stored a newer token meanwhile (then the refusal was stale)."""
    with engine.begin() as db:
        result = db.execute(
            update(OAuthToken)
            .where(col(OAuthToken.connection_id) == connection_id, col(OAuthToken.version) == expected)
            .values(status="needs_reauth", status_reason=reason[:500], lease_owner=None, lease_until=None)
        )
    return bool(result.rowcount)


def _take_lease(engine: Engine, connection_id: str, expected: int, owner: str, until: float, now: float) -> bool:
    with engine.begin() as db:
        result = db.execute(
            update(OAuthToken)
            .where(
                col(OAuthToken.connection_id) == connection_id,
                col(OAuthToken.version) == expected,
                or_(col(OAuthToken.lease_until).is_(None), col(OAuthToken.lease_until) < now),
            )
            .values(lease_owner=owner, lease_until=until)
        )
    return bool(result.rowcount)


def _drop_lease(engine: Engine, connection_id: str, owner: str) -> None:
    with engine.begin() as db:
        db.execute(
            update(OAuthToken)
            .where(col(OAuthToken.connection_id) == connection_id, col(OAuthToken.lease_owner) == owner)
            .values(lease_owner=None, lease_until=None)
        )


class StoredTokens:
    """The TokenSource of one connection in one run: the store's tokens, refreshed under the lock and lease."""

    def __init__(
        self,
        engine: Engine,
        vault: Vault,
        connection_id: str,
        spec: OAuth2Spec,
        client: OAuthClient,
        *,
        connector: str,
        http: Callable[[], httpx.AsyncClient] | None = None,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.05,
    ) -> None:
        """`spec` is the grant bound to the connection (inlet.oauth_clients.bound_grant); `http` makes the
        token endpoint's client (default: behind the egress guard, with no host allowed beyond public ones)."""
        self._engine, self._vault, self._id = engine, vault, connection_id
        self._spec, self._client = spec, client
        self._http = http or (lambda: httpx.AsyncClient(transport=guarded_transport(EgressPolicy()), timeout=30))
        self._connector, self._clock = connector, clock
        self._lease_seconds, self._poll_seconds = lease_seconds, poll_seconds
        self._owner = uuid.uuid4().hex
        self._row: TokenRow | None = None
        self.refreshes = 0  # token endpoint calls this source made

    def __repr__(self) -> str:
        return f"StoredTokens({self._id!r}, ***)"

    async def access_token(self) -> str:
        row = self._row or await self._read()
        if row.tokens.refresh_due(self._clock()):
            row = await self._refresh(row.version)
        return row.tokens.access_token.get_secret_value()

    async def refreshed(self, rejected: str) -> str:
        row = await self._read()
        if row.tokens.access_token.get_secret_value() == rejected or row.tokens.refresh_due(self._clock()):
            row = await self._refresh(row.version)
        return row.tokens.access_token.get_secret_value()

    async def _read(self) -> TokenRow:
        row = await asyncio.to_thread(read_tokens, self._engine, self._vault, self._id)
        if row is None:
            raise NotFound(
                f"connection {self._id!r} has no OAuth tokens; connect it with "
                "`inlet connections connect --tenant TENANT --app APP`"
            )
        if row.status != "active":
            raise NeedsReauth(reauth_message(self._id, row.status_reason), connector=self._connector)
        self._row = row
        return row

    async def _refresh(self, seen: int) -> TokenRow:
        lock = _LOCKS.setdefault(asyncio.get_running_loop(), {}).setdefault(self._id, asyncio.Lock())
        async with lock:
            while True:
                row = await self._read()
                if row.version != seen:
                    return row  # another task or process refreshed while this one waited
                now = self._clock()
                until = now + self._lease_seconds
                if await asyncio.to_thread(_take_lease, self._engine, self._id, seen, self._owner, until, now):
                    break
                await asyncio.sleep(self._poll_seconds)  # another process holds the lease: wait for its token
            try:
                return await self._call_token_endpoint(row)
            finally:
                await asyncio.to_thread(_drop_lease, self._engine, self._id, self._owner)

    async def _call_token_endpoint(self, row: TokenRow) -> TokenRow:
        if row.grant == "client_credentials":
            form = {"grant_type": "client_credentials", "scope": self._spec.scope_separator.join(self._spec.scopes)}
        elif row.tokens.refresh_token is None:
            reason = "the app gave no refresh token (Google: consent without access_type=offline)"
            await asyncio.to_thread(mark_needs_reauth, self._engine, self._id, row.version, reason)
            raise NeedsReauth(reauth_message(self._id, reason), connector=self._connector)
        else:
            form = {"grant_type": "refresh_token", "refresh_token": row.tokens.refresh_token.get_secret_value()}
        self.refreshes += 1
        try:
            async with self._http() as http:
                tokens = await request_token(
                    http,
                    self._spec,
                    self._client,
                    form,
                    connector=self._connector,
                    previous=row.tokens,
                )
        except InvalidGrant as exc:
            await asyncio.to_thread(mark_needs_reauth, self._engine, self._id, row.version, str(exc))
            logger.warning("%s: the refresh token was refused; the connection needs re-authorization", self._id)
            raise
        if await asyncio.to_thread(swap_tokens, self._engine, self._vault, self._id, row.version, tokens):
            logger.info("%s: access token refreshed", self._id)
        else:
            logger.info("%s: a newer token was stored meanwhile; using it instead of this refresh", self._id)
        return await self._read()


def reauth_message(connection_id: str, reason: str | None) -> str:
    return (
        f"connection {connection_id!r} needs re-authorization ({reason or 'its grant was revoked'}); "
        "no import runs until the tenant connects again with `inlet connections connect --tenant TENANT --app APP`"
    )
