"""Dotted paths into parsed JSON (`paging.next.after`, `value.0.id`); the empty path is the document itself.

A key that itself holds dots (OData's `@odata.nextLink`) is found too: at each level the whole rest of the
path is tried as one key before it is split at its first dot. On a list, the step `primary` is the item the
app marks primary (`metadata.primary`: Google; `primary`: Pipedrive), else the first: such lists have no order.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MISSING", "PRIMARY", "lookup", "primary_index"]

PRIMARY: Final = "primary"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


def lookup(document: Any, path: str, default: Any = MISSING) -> Any:
    """The value at `path`, or `default` when a step is absent (MISSING unless given)."""
    if not path:
        return document
    if isinstance(document, dict) and path in document:
        return document[path]
    step, _, rest = path.partition(".")
    if isinstance(document, dict):
        if step not in document:
            return default
        value = document[step]
    elif isinstance(document, list) and step == PRIMARY and document:
        value = document[primary_index(document)]
    elif isinstance(document, list) and step.lstrip("-").isdigit():
        index = int(step)
        if not -len(document) <= index < len(document):
            return default
        value = document[index]
    else:
        return default
    return lookup(value, rest, default) if rest else value


def primary_index(items: list[Any]) -> int:
    """The index of the item marked primary (`metadata.primary` or `primary`), else 0."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        metadata = item.get("metadata")
        if item.get("primary") is True or (isinstance(metadata, dict) and metadata.get("primary") is True):
            return index
    return 0
