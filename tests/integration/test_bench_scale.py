"""`bench/scale.py --quick` runs end to end and prints sane numbers, so the benchmark cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scale_bench_quick_mode_imports_everything_and_plots(tmp_path: Path) -> None:
    out, plot = tmp_path / "scale", tmp_path / "scale.png"
    command = [sys.executable, str(ROOT / "bench" / "scale.py"), "--quick", "--out", str(out), "--plot", str(plot)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    (size,) = results["sizes"]
    assert size["records"] == size["delivered"] == size["in_app"] == 200
    assert 0 < size["seconds"] < 60 and 50 < size["peak_rss_mb"] < 500
    many = results["connections"]
    assert many["completed"] == many["connections"] == 5 and many["failed"] == 0 and many["in_app"] == 50
    assert many["runs_per_minute"] > 0 and "| 200 |" in done.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
