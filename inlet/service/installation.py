"""One inlet installation as the service layer sees it: its settings, its store and (when needed) its vault."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from inlet.settings import Settings
from inlet.store import Vault, open_store

__all__ = ["Installation", "open_installation"]


@dataclass(frozen=True)
class Installation:
    """What every service operation works on; the vault is opened on first use (many operations need no key)."""

    settings: Settings
    engine: Engine

    @cached_property
    def vault(self) -> Vault:
        return Vault.from_settings(self.settings)


def open_installation(settings: Settings) -> Installation:
    """The installation of these settings, its store migrated to the newest schema."""
    return Installation(settings, open_store(settings.store_url))
