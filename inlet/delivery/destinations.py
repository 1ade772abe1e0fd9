"""Where a tenant's events go: the installation's default destination (settings), or the tenant's override
in the store, and the rotation of signing secrets (two active at once, both signing, the old one retired).

The default's secrets live in `<home>/destination.secret` and `<home>/destination.secret.previous`
(or in INLET_DESTINATION__SECRET / __PREVIOUS_SECRET, which the operator rotates by hand).
A tenant's secrets, bearer token and OAuth2 client secret are encrypted in the store with the vault.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from inlet.delivery.auth import BearerToken, ClientCredentials
from inlet.delivery.policy import Destination
from inlet.delivery.signing import generate_secret
from inlet.errors import ConfigError, NotFound
from inlet.settings import Settings
from inlet.store import DestinationOverride, Tenant, Vault, utcnow

__all__ = ["destination_for", "retire_secret", "rotate_secret", "set_destination"]


def destination_for(engine: Engine, settings: Settings, tenant_id: str) -> Destination:
    """The destination of one tenant: its override where it has one, else the default."""
    default = Destination.from_settings(settings)
    with Session(engine) as session:
        row = session.get(DestinationOverride, tenant_id)
    if row is None:
        return default
    stored = Vault.from_settings(settings).decrypt(row.secrets_encrypted)
    secrets = tuple(stored[name] for name in ("secret", "previous_secret") if name in stored) or default.secrets
    auth = default.auth
    if row.oauth_token_url and row.oauth_client_id and "oauth_client_secret" in stored:
        auth = ClientCredentials(
            row.oauth_token_url, row.oauth_client_id, stored["oauth_client_secret"], row.oauth_scope
        )
    elif "bearer_token" in stored:
        auth = BearerToken(stored["bearer_token"])
    return default.model_copy(
        update={
            "url": (row.url or default.url).rstrip("/"),
            "path": row.path or default.path,
            "secrets": secrets,
            "auth": auth,
        }
    )


def _check_url(url: str) -> None:
    """An absolute http(s) URL with a host, or a ConfigError saying what was wrong (nothing is saved)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"invalid URL {url!r}: {exc}; give one like https://app.example.com") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"invalid URL {url!r}: give an http(s) URL with a host, like https://app.example.com")


def set_destination(
    engine: Engine,
    settings: Settings,
    tenant_id: str,
    *,
    url: str | None = None,
    path: str | None = None,
    bearer_token: SecretStr | None = None,
    oauth: tuple[str, str, SecretStr, str | None] | None = None,
) -> str | None:
    """Create or change a tenant's destination; returns its new signing secret when one was made."""
    for given in (url, oauth[0] if oauth else None):
        if given is not None:
            _check_url(given)
    vault = Vault.from_settings(settings)
    with Session(engine) as session:
        if session.get(Tenant, tenant_id) is None:
            raise NotFound(f"no tenant {tenant_id!r}; add it first with `inlet tenants add {tenant_id}`")
        row = session.get(DestinationOverride, tenant_id) or DestinationOverride(tenant_id=tenant_id)
        stored = vault.decrypt(row.secrets_encrypted)
        created = None
        if "secret" not in stored:
            created = generate_secret()
            stored["secret"] = SecretStr(created)
        row.url, row.path = url or row.url, path or row.path
        if bearer_token is not None:
            stored["bearer_token"] = bearer_token
        if oauth is not None:
            row.oauth_token_url, row.oauth_client_id, stored["oauth_client_secret"], row.oauth_scope = oauth
        row.secrets_encrypted, row.updated_at = vault.encrypt(stored), utcnow()
        session.add(row)
        session.commit()
    return created


def rotate_secret(engine: Engine, settings: Settings, tenant_id: str | None = None) -> str:
    """Make a new signing secret; the current one stays active (both sign) until `retire_secret`."""
    new = generate_secret()
    if tenant_id is None:
        current, previous = _default_files(settings)
        if previous.exists():
            raise ConfigError(f"a rotation is under way; retire the old secret first ({previous} exists)")
        current.replace(previous)
        _write_private(current, new)
        return new
    vault = Vault.from_settings(settings)
    with Session(engine) as session:
        row = _override(session, tenant_id)
        stored = vault.decrypt(row.secrets_encrypted)
        if "previous_secret" in stored:
            raise ConfigError(f"tenant {tenant_id!r} is rotating already; retire its old secret first")
        stored["previous_secret"], stored["secret"] = stored["secret"], SecretStr(new)
        row.secrets_encrypted, row.updated_at = vault.encrypt(stored), utcnow()
        session.add(row)
        session.commit()
    return new


def retire_secret(engine: Engine, settings: Settings, tenant_id: str | None = None) -> bool:
    """Stop signing with the old secret; False when no rotation was under way."""
    if tenant_id is None:
        _, previous = _default_files(settings)
        if not previous.exists():
            return False
        previous.unlink()
        return True
    vault = Vault.from_settings(settings)
    with Session(engine) as session:
        row = _override(session, tenant_id)
        stored = vault.decrypt(row.secrets_encrypted)
        if stored.pop("previous_secret", None) is None:
            return False
        row.secrets_encrypted, row.updated_at = vault.encrypt(stored), utcnow()
        session.add(row)
        session.commit()
    return True


def _override(session: Session, tenant_id: str) -> DestinationOverride:
    row = session.get(DestinationOverride, tenant_id)
    if row is None:
        raise NotFound(
            f"tenant {tenant_id!r} has no destination of its own; "
            f"`inlet deliveries destination set --tenant {tenant_id}` makes one"
        )
    return row


def _default_files(settings: Settings) -> tuple[Path, Path]:
    if settings.destination.secret is not None:
        raise ConfigError(
            "the default secret comes from INLET_DESTINATION__SECRET: rotate it there, keeping the old one in "
            "INLET_DESTINATION__PREVIOUS_SECRET until the app knows the new one"
        )
    current = settings.home / "destination.secret"
    if not current.is_file():
        raise ConfigError(f"no signing secret at {current}; run `inlet init`")
    return current, settings.home / "destination.secret.previous"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
