"""Set up an installation: the state folder, the credentials key, the delivery signing secret and the store."""

from __future__ import annotations

import os

from inlet.delivery import generate_secret
from inlet.settings import Settings
from inlet.store import ensure_key_file, open_store

__all__ = ["initialise"]


def initialise(settings: Settings) -> list[str]:
    settings.home.mkdir(parents=True, exist_ok=True)
    lines = []
    if settings.secret_key is None and ensure_key_file(settings.home / "secret.key"):
        lines.append(f"created the credentials key {settings.home / 'secret.key'}")
    secret_file = settings.home / "destination.secret"
    if settings.destination.secret is None and not secret_file.exists():
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_secret())
        lines.append(f"created the delivery signing secret {secret_file}")
    open_store(settings.store_url)
    lines.append(f"store ready at {settings.store_url}")
    return lines
