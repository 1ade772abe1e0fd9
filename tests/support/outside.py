"""A connector written outside the source tree: docs' TinyCRM example copied into a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "connectors" / "tinycrm"


def outside_connector(root: Path, monkeypatch: pytest.MonkeyPatch, edits: dict[str, str] | None = None) -> Path:
    """Copy TinyCRM under `root` (each `old: new` of `edits` applied to its connector.yaml), put `root` on
    INLET_CONNECTORS_PATH, and return the connector's folder."""
    folder = root / "tinycrm"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    spec = folder / "connector.yaml"
    text = spec.read_text()
    for old, new in (edits or {}).items():
        assert old in text, f"the example's connector.yaml no longer has {old!r}"
        text = text.replace(old, new)
    spec.write_text(text)
    monkeypatch.setenv("INLET_CONNECTORS_PATH", str(root))
    return folder
