"""Mapping fixtures: a HubSpot contact as the API returns it, and a folder of mapping layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import load
from mappings import loader

Contact = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Layers:
    """Stands in for mappings/ (default and app layers) and a tenant overrides folder."""

    root: Path
    overrides: Path

    def default(self, text: str) -> Path:
        return self._write(self.root / "users.yaml", text)

    def app(self, app: str, text: str) -> Path:
        return self._write(self.root / "apps" / app / "users.yaml", text)

    def tenant(self, tenant: str, text: str) -> Path:
        return self._write(self.overrides / tenant / "users.yaml", text)

    @staticmethod
    def _write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@pytest.fixture
def layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layers:
    """Mapping files under a tmp folder that effective_mapping reads instead of mappings/."""
    monkeypatch.setattr(loader, "MAPPINGS_DIR", tmp_path / "mappings")
    return Layers(root=tmp_path / "mappings", overrides=tmp_path / "overrides")


@pytest.fixture
def hubspot_udm_fields() -> dict[str, str]:
    spec, _ = load("hubspot")
    return spec.collections["contacts"].udm_fields


@pytest.fixture
def contact() -> Contact:
    """`contact(**properties)`: a HubSpot CRM v3 contact; `id`, `archived` and the timestamps can be overridden."""

    def make(**overrides: Any) -> dict[str, Any]:
        top = {key: overrides.pop(key) for key in ("id", "archived", "createdAt", "updatedAt") if key in overrides}
        properties = {
            "email": "ada@example.org",
            "firstname": "Ada",
            "lastname": "Lovelace",
            "phone": None,
            "company": "Analytical Engines",
            "jobtitle": "Countess",
            "createdate": "2026-11-20T09:00:00.000Z",
            "lastmodifieddate": "2026-11-24T17:24:49.524Z",
            "hs_object_id": "1001",
        }
        raw = {
            "id": "1001",
            "properties": properties | overrides,
            "createdAt": "2026-11-20T09:00:00.000Z",
            "updatedAt": "2026-11-24T17:24:49.524Z",
            "archived": False,
        }
        return raw | top

    return make
