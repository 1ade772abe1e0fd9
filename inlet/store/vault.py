"""Credentials and OAuth tokens encrypted at rest (Fernet); the key lives outside the database: in settings,
a Prefect Secret block (INLET_SECRET_KEY_BLOCK) or a key file."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from inlet.errors import ConfigError
from inlet.settings import Settings

__all__ = ["Vault", "ensure_key_file"]


class Vault:
    """Encrypts and decrypts a connection's credentials."""

    def __init__(self, key: SecretStr) -> None:
        self._fernet = Fernet(key.get_secret_value().encode())

    def __repr__(self) -> str:
        return "Vault(***)"

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        if settings.secret_key is not None:
            return cls(settings.secret_key)
        if settings.secret_key_block is not None:
            return cls(_key_from_block(settings.secret_key_block))
        path = settings.home / "secret.key"
        if not path.is_file():
            raise ConfigError(f"no credentials key: set INLET_SECRET_KEY or run `inlet init` to create {path}")
        return cls(SecretStr(path.read_text().strip()))

    def encrypt(self, credentials: Mapping[str, SecretStr]) -> bytes:
        plain = {name: value.get_secret_value() for name, value in credentials.items()}
        return self._fernet.encrypt(orjson.dumps(plain))

    def seal(self, value: Any) -> bytes:
        """Any JSON value, encrypted and authenticated (OAuth tokens, the connect flow's `state`)."""
        return self._fernet.encrypt(orjson.dumps(value))

    def unseal(self, token: bytes, *, ttl: float | None = None, now: float | None = None) -> Any:
        """What `seal` sealed; InvalidToken when forged, altered or older than `ttl` seconds."""
        if ttl is None:
            return orjson.loads(self._fernet.decrypt(token))
        return orjson.loads(self._fernet.decrypt_at_time(token, int(ttl), int(time.time() if now is None else now)))

    def decrypt(self, token: bytes | None) -> dict[str, SecretStr]:
        if not token:
            return {}
        try:
            plain = orjson.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise ConfigError(
                "stored credentials cannot be decrypted with this key; was INLET_SECRET_KEY or secret.key changed?"
            ) from None
        return {name: SecretStr(value) for name, value in plain.items()}


def _key_from_block(name: str) -> SecretStr:
    """The key from a Prefect Secret block (imported here only: most installations keep a key file)."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name, _sync=True)  # type: ignore[call-arg]  # async_dispatch takes _sync
    except ValueError:
        raise ConfigError(f"no Prefect Secret block {name!r}; create it or unset INLET_SECRET_KEY_BLOCK") from None
    assert isinstance(block, Secret)
    return SecretStr(str(block.get()))


def ensure_key_file(path: Path) -> bool:
    """Create a key file readable only by its owner; False if one was already there."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode())
    return True
