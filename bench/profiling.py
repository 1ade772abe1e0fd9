"""Sampling profiles of a running process with py-spy (a bench-only dependency), summed per function.

    with Sampler(pid, OUT / "inlet.spy"):
        ...  # the work to profile
    for row in top(OUT / "inlet.spy"):
        print(row)

py-spy samples every thread that is not idle, native frames excluded, and writes "frame;frame;... count"
lines (`--format raw`). `top` adds them up per function: self (the function was on top of the stack) and
cumulative (it was anywhere on the stack, counted once per sample), as shares of all samples.
`python bench/profiling.py FILE [N]` prints the table of a saved profile.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["Sampler", "TopEntry", "py_spy", "top", "waiting_share"]

_ROOT = str(Path(__file__).resolve().parent.parent) + "/"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter or on PATH (pip install py-spy, or `.[bench]`)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


class Sampler:
    """Records `pid` with py-spy from enter to exit (100 samples/s, threads that are not idle)."""

    def __init__(self, pid: int, output: Path, rate: int = 100) -> None:
        self.pid, self.output, self.rate = pid, output, rate
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sampler:
        binary = py_spy()
        if binary is None:
            raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
        cmd = [binary, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw"]
        cmd += ["--output", str(self.output), "--nonblocking"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        _, stderr = self._proc.communicate(timeout=60)
        if not self.output.exists():
            raise SystemExit(f"py-spy wrote no profile: {stderr.decode(errors='replace')[-500:]}")


@dataclass(frozen=True)
class TopEntry:
    function: str
    self_share: float
    cumulative_share: float

    def __str__(self) -> str:
        return f"{self.self_share:6.1%} {self.cumulative_share:6.1%}  {self.function}"


# Waiting, not working: py-spy counts a thread in epoll or on a condition as active.
_WAITS = ("EpollSelector.select (selectors.py)", "Condition.wait (threading.py)", "Event.wait (threading.py)")
# Frames on every stack (thread and event-loop plumbing, this bench): no ranking by cumulative share needs them.
_PLUMBING = ("threading.py", "asyncio/", "runpy>", "anyio/_backends", "concurrent/futures", "contextlib.py", "bench/")


def top(raw: Path, n: int = 15, by: str = "self") -> list[TopEntry]:
    """The `n` functions with the most samples, by `self` or `cumulative` share; waits and, for `cumulative`,
    plumbing frames are left out of the ranking (shares stay shares of all samples)."""
    own, anywhere, total = _counts(raw)
    ranked = [name for name, _ in (own if by == "self" else anywhere).most_common() if name not in _WAITS]
    if by != "self":
        ranked = [name for name in ranked if not any(marker in name for marker in _PLUMBING)]
    return [TopEntry(name, own[name] / total, anywhere[name] / total) for name in ranked[:n]]


def waiting_share(raw: Path) -> float:
    """The share of samples in which a thread waited (epoll, a condition), which `top` leaves out."""
    own, _, total = _counts(raw)
    return sum(own[name] for name in _WAITS) / total


def _counts(raw: Path) -> tuple[Counter[str], Counter[str], int]:
    """Samples per function: on top of the stack, anywhere on it (once per sample), and all samples."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(frame) for frame in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    return own, anywhere, max(total, 1)


def _name(frame: str) -> str:
    """`function (path/to/module.py:12)` -> `function (module.py)`; the package path is shortened."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"].removeprefix(_ROOT)
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


if __name__ == "__main__":
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    print(f"waiting (epoll, conditions), left out below: {waiting_share(Path(sys.argv[1])):.1%} of the samples")
    for order in ("self", "cumulative"):
        print(f"by {order}:   self    cum  function")
        for entry in top(Path(sys.argv[1]), limit, order):
            print(f"  {entry}")
