"""Pages of a list: at most `limit` items and an opaque cursor for the next page (None on the last one).

A cursor is the last item's key, base64url-encoded JSON; a cursor that does not decode is refused with a
ConfigError, never taken for "from the start".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson

from inlet.errors import ConfigError

__all__ = ["MAX_LIMIT", "Page", "all_items", "checked_limit", "decode_cursor", "encode_cursor", "page_of"]

T = TypeVar("T")
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: str | int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type[str] | type[int]) -> str | int | None:
    """The key a cursor holds, of the expected kind; None for no cursor."""
    if cursor is None or cursor == "":
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise ConfigError("the cursor is not one this API handed out; start again without it") from None
    if not isinstance(key, kind) or isinstance(key, bool) or (isinstance(key, int) and not -(2**63) <= key < 2**63):
        raise ConfigError("the cursor is not one this API handed out; start again without it")
    return key


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], str | int]) -> Page[T]:
    """`rows` fetched with limit + 1: the page, and a cursor when there is more."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items, encode_cursor(key(items[-1])) if more and items else None)


def checked_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def all_items(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of a paged list, page after page (`fetch(cursor)` gives one page)."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
