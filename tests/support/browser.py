"""A screenshot of a Prefect UI page in headless Chromium (Debian's `chromium`), for the README and its test.

    .venv/bin/python -m tests.support.browser URL [docs/flow-run.png]

The Prefect UI is a single-page app: Chromium's virtual time budget lets it fetch the run, its task runs and
artifacts before the picture is taken. The flags keep Chromium off the network (this machine has none).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["CHROMIUM", "capture", "rendered_text"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_OFFLINE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def capture(url: str, path: Path, *, width: int = 1440, height: int = 1100, budget_ms: int = 20000) -> Path:
    """Render `url` and save it as a PNG at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(url, f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}", f"--screenshot={path}")
    return path


def rendered_text(url: str, *, budget_ms: int = 20000) -> str:
    """The page's DOM once its scripts ran: what a person would see, as HTML."""
    return _chromium(url, "--window-size=1440,1100", f"--virtual-time-budget={budget_ms}", "--dump-dom")


def _chromium(url: str, *options: str) -> str:
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="inlet-chromium-") as profile:
        command = [CHROMIUM, *_OFFLINE_FLAGS, f"--user-data-dir={profile}", *options, url]
        done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
    return done.stdout


if __name__ == "__main__":
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/flow-run.png")
    print(capture(sys.argv[1], target.resolve()))
