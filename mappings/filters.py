"""The filters and globals mapping authors get beyond Jinja's own, registered in one dict each.

- `first_name`, `last_name`: `{{ "Ada King Lovelace" | first_name }}` -> "Ada"; `last_name` -> "King Lovelace".
- `lower`, `upper`, `trim` (Jinja's): `{{ " Ada@X.org " | trim | lower }}` -> "ada@x.org".
- `default` (Jinja's): `{{ raw.fax | default(none) }}` -> None when `raw.fax` is missing.
- `coalesce`, a global and a filter: `{{ coalesce(raw.mobile, raw.phone, "n/a") }}` -> the first value that
  is neither missing, None nor "".
- `parse_date`: `{{ raw.createdAt | parse_date }}` -> a datetime from ISO 8601 text, epoch seconds or
  milliseconds; `parse_date("%d/%m/%Y")` reads text in a strptime format.
- `format_date`: `{{ raw.createdAt | format_date("%Y-%m-%d") }}` -> text; parses first when needed.
- `lookup`: `{{ raw.country | lookup("countries", "other") }}` -> the entry in the tenant's lookup table,
  else the default, else a RecordError.
- `join` (Jinja's) and `split`: `{{ raw.tags | join(",") }}`, `{{ raw.tags | split(",") }}`.
- `hash`: `{{ email | hash }}` -> sha256 hex digest of the value's text; `hash("md5")` and others.

Each one raises ValueError or TypeError on input it cannot take; the engine turns that into a RecordError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from jinja2 import Undefined, pass_context

__all__ = ["FILTERS", "GLOBALS", "coalesce", "first_name", "format_date", "last_name", "lookup", "parse_date"]

_HASHES = frozenset({"sha256", "sha1", "md5", "blake2b", "sha512"})
_EPOCH_MS_ABOVE = 100_000_000_000  # a number above this is milliseconds (year 5138 in seconds)
_NO_DEFAULT = object()


def first_name(full_name: Any) -> str | None:
    """The first word of a full name: "Ada King Lovelace" -> "Ada"."""
    parts = str(full_name).split() if full_name else []
    return parts[0] if parts else None


def last_name(full_name: Any) -> str | None:
    """All but the first word of a full name: "Ada King Lovelace" -> "King Lovelace"."""
    parts = str(full_name).split(maxsplit=1) if full_name else []
    return parts[1] if len(parts) > 1 else None


def _present(value: Any) -> bool:
    return not isinstance(value, Undefined) and value is not None and value != ""


def coalesce(*values: Any) -> Any:
    """The first value that is neither missing, None nor the empty string; None when all are."""
    return next((value for value in values if _present(value)), None)


def parse_date(value: Any, fmt: str | None = None) -> datetime | None:
    """A datetime from a datetime, an ISO 8601 string, epoch seconds or milliseconds, or text in `fmt`."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        raise TypeError(f"parse_date: cannot read a date from {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > _EPOCH_MS_ABOVE else value
        return datetime.fromtimestamp(seconds, UTC)
    if not isinstance(value, str):
        raise TypeError(f"parse_date: cannot read a date from a {type(value).__name__}")
    if fmt is not None:
        return datetime.strptime(value, fmt)
    return datetime.fromisoformat(value)


def format_date(value: Any, fmt: str = "%Y-%m-%dT%H:%M:%S%z") -> str | None:
    """A date as text in `fmt` (strftime codes); None stays None."""
    parsed = parse_date(value)
    return None if parsed is None else parsed.strftime(fmt)


@pass_context
def lookup(context: Any, value: Any, table: str, default: Any = _NO_DEFAULT) -> Any:
    """`value`'s entry in the tenant's lookup table `table`; `default` (or a RecordError) when it has none."""
    tables = context.get("lookups")
    if not isinstance(tables, Mapping) or table not in tables:
        raise ValueError(f"lookup: no lookup table {table!r} for this tenant")
    if isinstance(value, Undefined):
        str(value)  # raises: a missing value is an error, not a miss
    entries = tables[table]
    key = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if isinstance(key, str) and key in entries:
        return entries[key]
    if default is _NO_DEFAULT:
        raise ValueError(f"lookup: {value!r} is not in the lookup table {table!r} and no default is given")
    return default


def split(value: Any, separator: str | None = None, maxsplit: int = -1) -> list[str]:
    """Text split on `separator` (whitespace by default); None gives an empty list."""
    if value is None:
        return []
    if not isinstance(value, str):
        raise TypeError(f"split: expected text, got a {type(value).__name__}")
    return value.split(separator, maxsplit)


def hash_value(value: Any, algorithm: str = "sha256") -> str:
    """Hex digest of the value's text; algorithms: sha256 (default), sha1, sha512, md5, blake2b."""
    if algorithm not in _HASHES:
        raise ValueError(f"hash: unknown algorithm {algorithm!r}; use one of {sorted(_HASHES)}")
    if isinstance(value, Undefined):
        str(value)  # raises for a missing value
    return hashlib.new(algorithm, str(value).encode()).hexdigest()


FILTERS: dict[str, Any] = {
    "first_name": first_name,
    "last_name": last_name,
    "coalesce": lambda value, *others: coalesce(value, *others),
    "parse_date": parse_date,
    "format_date": format_date,
    "lookup": lookup,
    "split": split,
    "hash": hash_value,
}
GLOBALS: dict[str, Any] = {"coalesce": coalesce}
