"""Set up an installation: the state folder, the credentials key, the delivery signing secret and the store.

The state folder (INLET_HOME) is its owner's alone: the store and Prefect's database hold raw tenant records
and run logs, secret.key unlocks every credential. Its folders are 0700 and its files 0600: the CLI starts with
umask 077, which every process `inlet up` starts inherits, and `secure_home` takes group and other permissions
off whatever an older version (or another tool) left there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from inlet.delivery import generate_secret
from inlet.settings import Settings
from inlet.store import ensure_key_file, open_store

__all__ = ["OWNER_ONLY_UMASK", "initialise", "secure_home"]

OWNER_ONLY_UMASK = 0o077


def initialise(settings: Settings) -> list[str]:
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    secure_home(settings)
    lines.append(f"store ready at {settings.store_url}")
    return lines


def secure_home(settings: Settings) -> None:
    """Take group and other permissions off the state folder and everything in it (symlinks are skipped)."""
    home = settings.home
    if not home.is_dir():
        return
    for path in (home, *home.rglob("*")):
        _owner_only(path)


def _owner_only(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            path.chmod(stat.S_IMODE(mode) & 0o700)
    except FileNotFoundError:  # a SQLite -wal or -shm file that went while we walked
        pass
