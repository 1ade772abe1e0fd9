"""A write's body from the reversed fields: dotted external paths (`names.0.givenName`) as nested JSON.

The step `primary` is a list's primary item (Google's `emailAddresses.primary.value`). An update replaces the
whole list in such apps, so the body carries the record's other items as they are now, and the primary one
with the written fields; a create has no current record: its list holds the one written item.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from connectors.paths import PRIMARY, primary_index

__all__ = ["nested_body"]


def nested_body(fields: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The nested body for `fields` (by dotted path); `current` is the record as the app shows it now."""
    out: dict[str, Any] = {}
    for path, value in fields.items():
        *steps, last = path.split(".")
        node: Any = out
        shown: Any = current
        for step, after in zip(steps, [*steps[1:], last], strict=False):  # no steps: a top-level field
            node, shown = _descend(node, step, after, shown)
        if isinstance(node, list):
            node[_slot(node, last)] = value
        else:
            node[last] = value
    return out


def _descend(node: Any, step: str, after: str, shown: Any) -> tuple[Any, Any]:
    """The child of `node` at `step` (made when absent), and the current record's value at the same place."""
    listed = after.isdigit() or after == PRIMARY
    if isinstance(node, list):
        index = _slot(node, step)
        if node[index] is None:
            node[index] = [] if listed else {}
        return node[index], _item(shown, step)
    child_shown = shown.get(step) if isinstance(shown, Mapping) else None
    if step not in node:
        node[step] = _kept(child_shown) if after == PRIMARY else [] if listed else {}
    return node[step], child_shown


def _kept(items: Any) -> list[Any]:
    """The current items, for the written fields to change the primary one (its other keys stay as they are:
    a field the conflict check left out, since both sides agree on it, is not cleared)."""
    return copy.deepcopy(items) if isinstance(items, list) else []


def _slot(node: list[Any], step: str) -> int:
    if step == PRIMARY:
        if not node:
            node.append({})
        return primary_index(node)
    index = int(step)
    while len(node) <= index:
        node.append(None)
    return index


def _item(shown: Any, step: str) -> Any:
    if not isinstance(shown, list) or not shown:
        return None
    index = primary_index(shown) if step == PRIMARY else int(step)
    return shown[index] if index < len(shown) else None
