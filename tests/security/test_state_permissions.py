"""The state folder is its owner's alone: folders 0700, files 0600, the store's -wal and -shm included."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from inlet.service import initialise, secure_home
from inlet.settings import Settings
from inlet.store import create_store_engine

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def shell_umask() -> Iterator[None]:
    """The umask a shell gives (022): whatever is tighter than 0644 below is inlet's own doing."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_init_creates_an_owner_only_state_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    initialise(Settings(home=home))
    assert mode(home) == 0o700
    assert {name: oct(mode(home / name)) for name in ("secret.key", "destination.secret", "inlet.db")} == {
        "secret.key": "0o600", "destination.secret": "0o600", "inlet.db": "0o600"
    }  # fmt: skip


def test_the_stores_wal_and_shm_files_are_owner_only(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'state' / 'inlet.db'}")
    with engine.begin() as db:  # WAL mode: the open connection keeps inlet.db-wal and inlet.db-shm
        db.execute(text("CREATE TABLE t (x TEXT)"))
        db.execute(text("INSERT INTO t VALUES ('raw tenant record')"))
        files = sorted(p.name for p in (tmp_path / "state").iterdir())
        assert files == ["inlet.db", "inlet.db-shm", "inlet.db-wal"]
        assert {name: oct(mode(tmp_path / "state" / name)) for name in files} == dict.fromkeys(files, "0o600")
    engine.dispose()
    assert mode(tmp_path / "state") == 0o700


def test_an_older_world_readable_store_is_made_owner_only_when_opened(tmp_path: Path) -> None:
    for name in ("inlet.db", "inlet.db-wal", "inlet.db-shm"):
        (tmp_path / name).touch(mode=0o644)
    create_store_engine(f"sqlite:///{tmp_path / 'inlet.db'}").dispose()
    assert [oct(mode(tmp_path / n)) for n in ("inlet.db", "inlet.db-wal", "inlet.db-shm")] == ["0o600"] * 3


def test_secure_home_takes_group_and_other_bits_off_everything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "prefect" / "storage").mkdir(parents=True, mode=0o755)
    for name in ("prefect/prefect.db", "prefect/prefect.db-wal", "logs.txt"):
        (home / name).touch(mode=0o644)
    (home / "run.sh").touch(mode=0o755)
    outside = tmp_path / "shared.txt"
    outside.touch(mode=0o644)
    (home / "link").symlink_to(outside)
    secure_home(Settings(home=home))
    modes = {str(p.relative_to(home)): oct(mode(p)) for p in home.rglob("*") if not p.is_symlink()}
    assert modes == {"prefect": "0o700", "prefect/storage": "0o700", "prefect/prefect.db": "0o600",
                     "prefect/prefect.db-wal": "0o600", "logs.txt": "0o600", "run.sh": "0o700"}  # fmt: skip
    assert mode(home) == 0o700 and mode(outside) == 0o644  # a link's target outside the folder is not ours


def test_every_cli_command_secures_the_state_folder_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "inlet.db").touch(mode=0o644)
    env = {**os.environ, "INLET_HOME": str(home), "PYTHONPATH": str(ROOT)}
    # A command group's help is the least a command does; the root's bare `--help` alone loads and touches nothing
    # (issue 17: it answers at once), so it is the one thing that leaves the folder as it is.
    command = [sys.executable, "-m", "inlet.cli", "tenants", "--help"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    assert (mode(home), mode(home / "inlet.db")) == (0o700, 0o600)


def test_making_the_store_owner_only_never_opens_an_existing_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing any descriptor of a SQLite file drops every POSIX lock this process holds on it; another process
    closing its last connection may then delete the -wal and -shm under ours (a flow test saw disk I/O errors
    when the permission step opened the store of an engine already open in the same process)."""
    url, path = f"sqlite:///{tmp_path / 'inlet.db'}", tmp_path / "inlet.db"
    create_store_engine(url).dispose()
    opened: list[str] = []
    real_open = os.open

    def recording_open(file: Any, flags: int, mode: int = 0o777) -> int:
        descriptor = real_open(file, flags, mode)
        opened.append(str(file))
        return descriptor

    monkeypatch.setattr(os, "open", recording_open)
    engine = create_store_engine(url)
    assert path.is_file() and str(path) not in opened
    engine.dispose()
