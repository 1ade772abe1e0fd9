"""Conflict resolution for one pushed update: when the external record changed since the last sync too, each
field the two sides disagree on goes to its owner, or to the later writer by timestamp."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inlet.push.reverse import ConflictPolicy, Reversed
from inlet.store import field_value

__all__ = ["Conflict", "external_changed", "instant", "latest", "resolve"]


@dataclass(frozen=True)
class Conflict:
    """One field both sides changed, and who won it."""

    app_id: str
    external_id: str
    field: str
    winner: str  # app or external
    rule: str  # owner or last_writer

    def as_dict(self) -> dict[str, str]:
        return {
            "app_id": self.app_id,
            "external_id": self.external_id,
            "field": self.field,
            "winner": self.winner,
            "rule": self.rule,
        }


def external_changed(current_modified: str | None, synced_modified: str | None) -> bool:
    """Did the external record change after the last sync? Unknown (no stamps) counts as no."""
    if not current_modified or not synced_modified:
        return False
    try:
        return instant(current_modified) > instant(synced_modified)
    except ValueError:
        return current_modified != synced_modified


def latest(*stamps: str | None) -> str | None:
    """The latest of some ISO 8601 stamps (None when there is none)."""
    known = [s for s in stamps if s]
    try:
        return max(known, key=instant) if known else None
    except ValueError:
        return known[-1]


def resolve(
    reversed_: Reversed,
    current: Mapping[str, Any],
    current_modified: str | None,
    app_changed_at: str | None,
    policy: ConflictPolicy,
    *,
    app_id: str,
    external_id: str,
) -> tuple[dict[str, Any], list[Conflict]]:
    """The fields to write, and the conflicts decided on the way (both sides changed since the last sync)."""
    fields: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    for path, value in reversed_.fields.items():
        if field_value(current, path) == value:
            continue  # the sides agree: nothing to write, nothing to decide
        udm_field = reversed_.sources.get(path, path)
        owner = policy.owner(udm_field)
        if owner is None:
            winner = "app" if _app_later(app_changed_at, current_modified) else "external"
            rule = "last_writer"
        else:
            winner, rule = owner, "owner"
        conflicts.append(Conflict(app_id, external_id, udm_field, winner, rule))
        if winner == "app":
            fields[path] = value
    return fields, conflicts


def _app_later(app_changed_at: str | None, external_modified: str | None) -> bool:
    if not app_changed_at or not external_modified:
        return app_changed_at is not None  # only the app's change has a time: it is the one we know is newer
    try:
        return instant(app_changed_at) >= instant(external_modified)
    except ValueError:
        return True


def instant(value: str) -> datetime:
    """An ISO 8601 stamp as an aware datetime (naive ones are UTC)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
