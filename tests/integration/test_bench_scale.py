"""`bench/scale.py --quick` runs end to end and prints sane numbers, so the benchmark cannot rot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scale_bench_quick_mode_imports_everything_and_plots(tmp_path: Path) -> None:
    out, plot = tmp_path / "scale", tmp_path / "scale.png"
    command = [sys.executable, str(ROOT / "bench" / "scale.py"), "--quick", "--out", str(out), "--plot", str(plot)]
    # Its own process group, so a hang (the 900 s last resort) takes down the stack it started, not only itself.
    bench = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = bench.communicate(timeout=900)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()

    assert bench.returncode == 0, stdout + stderr
    results = json.loads((out / "results.json").read_text())
    (size,) = results["sizes"]
    assert size["records"] == size["delivered"] == size["in_app"] == 200
    assert size["seconds"] > 0 and 50 < size["peak_rss_mb"] < 500  # no bound on time: CI shares 2 cores
    many = results["connections"]
    assert many["completed"] == many["connections"] == 5 and many["failed"] == 0 and many["in_app"] == 50
    assert many["runs_per_minute"] > 0 and "| 200 |" in stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
