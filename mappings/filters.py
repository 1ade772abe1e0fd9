"""The filters mapping authors get beyond Jinja's own, registered in one dict."""

from __future__ import annotations

from typing import Any

__all__ = ["FILTERS", "first_name", "last_name"]


def first_name(full_name: Any) -> str | None:
    """The first word of a full name: "Ada King Lovelace" -> "Ada"."""
    parts = str(full_name).split() if full_name else []
    return parts[0] if parts else None


def last_name(full_name: Any) -> str | None:
    """All but the first word of a full name: "Ada King Lovelace" -> "King Lovelace"."""
    parts = str(full_name).split(maxsplit=1) if full_name else []
    return parts[1] if len(parts) > 1 else None


FILTERS = {"first_name": first_name, "last_name": last_name}
