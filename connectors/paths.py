"""Dotted paths into parsed JSON (`paging.next.after`, `value.0.id`); the empty path is the document itself."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MISSING", "lookup"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


def lookup(document: Any, path: str, default: Any = MISSING) -> Any:
    """The value at `path`, or `default` when a step is absent (MISSING unless given)."""
    if not path:
        return document
    value = document
    for step in path.split("."):
        if isinstance(value, dict):
            if step not in value:
                return default
            value = value[step]
        elif isinstance(value, list) and step.lstrip("-").isdigit():
            index = int(step)
            if not -len(value) <= index < len(value):
                return default
            value = value[index]
        else:
            return default
    return value
