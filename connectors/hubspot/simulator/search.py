"""The CRM search query: filter groups (ORed) of filters (ANDed), one sort, the properties to return."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from connectors.hubspot.simulator.wire import DATES, DEFAULT_PROPERTIES, VALUES, epoch_ms, invalid, is_id
from connectors.simulation import Person

__all__ = ["MAX_SEARCH_LIMIT", "SEARCH_CAP", "filter_groups", "search_names", "sort"]

MAX_SEARCH_LIMIT = 200
SEARCH_CAP = 10_000  # results one search query can page through
_MAX_GROUPS, _MAX_GROUP_FILTERS, _MAX_FILTERS = 5, 10, 25  # the Aug 2024 changelog's limits
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq,
    "NEQ": operator.ne,
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


def filter_groups(raw: Any) -> list[list[Callable[[Person], bool]]]:
    """Groups are ORed, the filters inside one group ANDed."""
    if not isinstance(raw, list) or any(not isinstance(g, dict) or not isinstance(g.get("filters"), list) for g in raw):
        raise invalid("filterGroups must be a list of {filters: [...]}")
    sizes = [len(group["filters"]) for group in raw]
    if len(raw) > _MAX_GROUPS or max(sizes, default=0) > _MAX_GROUP_FILTERS or sum(sizes) > _MAX_FILTERS:
        raise invalid(f"at most {_MAX_GROUPS} filter groups of {_MAX_GROUP_FILTERS}, {_MAX_FILTERS} filters in all")
    return [[_predicate(f) for f in group["filters"]] for group in raw]


def sort(raw: Any) -> tuple[Callable[[Person], tuple[Any, ...]], bool]:
    """Only the first sort is honoured; without one, contacts come by id."""
    if not isinstance(raw, list) or any(not isinstance(s, dict) or "propertyName" not in s for s in raw):
        raise invalid("sorts must be a list of {propertyName, direction}")
    if not raw:
        return (lambda p: (p.seq,)), False
    direction = raw[0].get("direction", "ASCENDING")
    if direction not in ("ASCENDING", "DESCENDING"):
        raise invalid(f"sort direction {direction!r} is not ASCENDING or DESCENDING")
    get = VALUES.get(str(raw[0]["propertyName"]), _no_value)
    return (lambda p: ((v := get(p)) is None, "" if v is None else v, p.seq)), direction == "DESCENDING"


def search_names(raw: Any) -> list[str]:
    if raw is None or raw == []:
        return list(DEFAULT_PROPERTIES)
    if not isinstance(raw, list):
        raise invalid("properties must be a list of property names")
    return sorted({name for name in map(str, raw) if name in VALUES})


def _predicate(spec: Any) -> Callable[[Person], bool]:
    if not isinstance(spec, dict) or not isinstance(spec.get("propertyName"), str):
        raise invalid("each filter needs a propertyName")
    name, op = spec["propertyName"], spec.get("operator")
    get = VALUES.get(name, _no_value)
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return lambda p: (get(p) not in (None, "")) == (op == "HAS_PROPERTY")
    if op in ("IN", "NOT_IN"):
        if not isinstance(spec.get("values"), list):
            raise invalid(f"{op} needs values: [...]")
        wanted = {_coerce(name, v) for v in spec["values"]}
        return lambda p: (get(p) in wanted) == (op == "IN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(spec.get("value", "")).lower()
        return lambda p: _has_token(get(p), pattern) == (op == "CONTAINS_TOKEN")
    if op != "BETWEEN" and op not in _COMPARE:
        raise invalid(f"unknown operator {op!r}")
    value = _coerce(name, spec.get("value"))
    if op == "BETWEEN":
        high = _coerce(name, spec.get("highValue"))

        def between(person: Person) -> bool:
            actual: Any = get(person)
            return actual is not None and value <= actual <= high

        return between
    compare = _COMPARE[op]

    def test(person: Person) -> bool:
        actual = get(person)
        return op == "NEQ" if actual is None else compare(actual, value)

    return test


def _no_value(person: Person) -> None:
    """The value of a property contacts do not have."""
    return None


def _coerce(name: str, value: Any) -> int | str:
    """A filter value as the property's type: dates from epoch ms or ISO-8601, ids as numbers."""
    if value is None or isinstance(value, bool | dict | list):
        raise invalid(f"filter on {name} needs a value")
    text = str(value)
    if name in DATES:
        if text.isdigit():
            return int(text)
        try:
            return epoch_ms(text)
        except ValueError:
            raise invalid(f"{text!r} is neither epoch milliseconds nor an ISO-8601 date") from None
    if name == "hs_object_id":
        if not is_id(text):
            raise invalid(f"hs_object_id {text!r} is not a number")
        return int(text)
    return text


def _has_token(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    text = str(value).lower()
    return any(fnmatchcase(token, pattern) for token in [text, *re.findall(r"\w+", text)])
