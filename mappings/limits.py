"""Size limits inside the sandbox, so one tenant's expression cannot take the worker's memory or CPU.

Jinja's sandbox blocks attribute escapes but lets `"x" * 10**10`, `2 ** 10**8` or `"%999999999d" % 1`
run. Those operators, and the filters that pad text to a width, are checked here before they compute.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from jinja2 import filters as jinja_filters

__all__ = ["LIMITED_FILTERS", "MAX_SIZE", "limited_binop"]

MAX_SIZE = 100_000  # characters or items an operator or a padding filter may produce
_MAX_EXPONENT_BITS = 4_096
_WIDTH = re.compile(r"%[-#0 +]*(\d+)?(?:\.(\d+))?")
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {"*": operator.mul, "**": operator.pow, "%": operator.mod}


def limited_binop(op: str, left: Any, right: Any) -> Any:
    """`left op right`, refused with a ValueError when the result would be too large."""
    if op == "*":
        _check_repeat(left, right)
        _check_repeat(right, left)
    elif op == "**":
        _check_power(left, right)
    elif op == "%" and isinstance(left, str):
        _check_widths(left)
    return _OPERATORS[op](left, right)


def _check_repeat(sequence: Any, count: Any) -> None:
    if isinstance(sequence, str | list | tuple) and isinstance(count, int) and len(sequence) * count > MAX_SIZE:
        raise ValueError(f"the result would hold more than {MAX_SIZE} items")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
        if exponent * max(abs(base).bit_length(), 1) > _MAX_EXPONENT_BITS:
            raise ValueError("the power is too large")


def _check_widths(template: str) -> None:
    for match in _WIDTH.finditer(template):
        if any(group and int(group) > MAX_SIZE for group in match.groups()):
            raise ValueError(f"a format width above {MAX_SIZE}")


def _width_checked(function: Callable[..., Any], position: int, name: str) -> Callable[..., Any]:
    """`function`, refusing a width argument (positional `position` or keyword `name`) above MAX_SIZE."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        width = kwargs.get(name, args[position] if len(args) > position else 0)
        if isinstance(width, int) and width > MAX_SIZE:
            raise ValueError(f"{name} above {MAX_SIZE}")
        return function(*args, **kwargs)

    return checked


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_widths(str(value))
    return jinja_filters.do_format(value, *args, **kwargs)


LIMITED_FILTERS: dict[str, Any] = {
    "center": _width_checked(jinja_filters.do_center, 1, "width"),
    "format": _format,
    "indent": _width_checked(jinja_filters.do_indent, 1, "width"),
}
