"""Size limits inside the sandbox, so one tenant's expression cannot take the worker's memory or CPU.

Jinja's sandbox blocks attribute escapes but lets `"x" * 10**10`, `2 ** 10**8`, `"%999999999d" % 1`,
`s.ljust(10**9)` or `big | replace("x", big)` run. Those operators, the string methods and the filters that
can multiply what they are given are checked here *before* they compute, against the record's budget
(mappings/budget.py: `max_size` characters or items, shared references counted each time); what a call
returns is weighed after it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jinja2 import filters as jinja_filters

from mappings.budget import current, weight

__all__ = ["LIMITED_FILTERS", "check_call", "check_result", "limited_binop", "limited_join"]

_MAX_INT_BITS = 4_096
_WIDTH = re.compile(r"%[-#0 +]*(\d+)?(?:\.(\d+))?")
_FORMAT_WIDTH = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)")
_STAR_WIDTH = re.compile(r"%[-#0 +]*\*|%[-#0 +]*\d*\.\*")  # `%*d`: the width comes from an argument
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")  # `{:{}}`: the same, for str.format
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "*": operator.mul,
    "**": operator.pow,
    "%": operator.mod,
    "+": operator.add,
}
_PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})


def _limit() -> int:
    return current().budget.max_size


def _refuse(size: int, what: str) -> None:
    current().size(size, what)


def _refuse_outright(what: str) -> None:
    current().exceeded("size", what, "MAX_SIZE")


def limited_binop(op: str, left: Any, right: Any) -> Any:
    """`left op right`, refused (BudgetExceeded) when the result would be too large or the record is out of time."""
    current().tick()
    if op == "*":
        _check_repeat(left, right)
        _check_repeat(right, left)
        _check_bits(left, right)
    elif op == "**":
        _check_power(left, right)
    elif op == "%" and isinstance(left, str):
        _check_widths(left)
    elif op == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        _refuse(weight(left, _limit()) + weight(right, _limit()), "a sum")
    return _OPERATORS[op](left, right)


def _check_repeat(sequence: Any, count: Any) -> None:
    if isinstance(sequence, str | list | tuple) and isinstance(count, int) and count > 0:
        _refuse(weight(sequence, _limit()) * count, "a product")


def _check_bits(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
        _refuse_outright(f"a number of more than {_MAX_INT_BITS} bits")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
        if exponent * max(abs(base).bit_length(), 1) > _MAX_INT_BITS:
            _refuse_outright(f"a power of more than {_MAX_INT_BITS} bits")


def _check_widths(template: str) -> None:
    if _STAR_WIDTH.search(template):
        _refuse_outright("a format width taken from an argument (`%*d`)")
    for match in _WIDTH.finditer(template):
        if any(group and int(group) > _limit() for group in match.groups()):
            _refuse(int(max(g or "0" for g in match.groups())), "a format width")


def limited_join(parts: Sequence[Any]) -> str:
    """`a ~ b`: the parts as text, refused when the whole would be too long."""
    texts = [str(part) for part in parts]
    _refuse(sum(map(len, texts)), "a concatenation")
    return "".join(texts)


def check_call(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a string method call whose result would be too large (`s.ljust(10**9)`, `s.replace(a, big)`)."""
    function = getattr(function, "__wrapped__", function)  # the sandbox wraps str.format in its own function
    text, name = getattr(function, "__self__", None), getattr(function, "__name__", "")
    if not isinstance(text, str):
        return
    if name in _PADDING_METHODS:
        width = args[0] if args else kwargs.get("width", 0)
        _refuse(width if isinstance(width, int) else 0, f"str.{name}")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        _refuse(len(text) + text.count("\t") * (size if isinstance(size, int) else 8), "str.expandtabs")
    elif name == "replace" and len(args) >= 2:
        _refuse(_replaced_size(text, str(args[0]), str(args[1])), "str.replace")
    elif name in ("format", "format_map"):
        if _NESTED_FIELD.search(text):
            _refuse_outright("a format width taken from an argument (`{:{}}`)")
        for match in _FORMAT_WIDTH.finditer(text):
            _refuse(int(match.group(1)), "a format width")


def check_result(value: Any) -> Any:
    """The value, unless it is too heavy to keep."""
    if isinstance(value, str | list | tuple | dict):
        _refuse(weight(value, _limit()), "a result")
    return value


def _replaced_size(text: str, old: str, new: str) -> int:
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * max(len(new) - len(old), 0)


def _width_checked(function: Callable[..., Any], position: int, name: str) -> Callable[..., Any]:
    """`function`, refusing a width argument (positional `position` or keyword `name`) above the size budget."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        width = kwargs.get(name, args[position] if len(args) > position else 0)
        size = width if isinstance(width, int) else len(width) if isinstance(width, str) else 0
        lines = str(args[0]).count("\n") + 1 if function is jinja_filters.do_indent and args else 1
        _refuse(size * lines, name)
        return function(*args, **kwargs)

    return checked


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_widths(str(value))
    return jinja_filters.do_format(value, *args, **kwargs)


def _replace(eval_ctx: Any, value: Any, old: str, new: str, count: int | None = None) -> Any:
    _refuse(_replaced_size(str(value), str(old), str(new)), "replace")
    return jinja_filters.do_replace(eval_ctx, value, old, new, count)


def _join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
    items = list(value)
    _refuse(weight(items, _limit()) + len(str(d)) * len(items), "join")
    return jinja_filters.do_join(eval_ctx, items, d, attribute)


def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    items = list(iterable)
    if not isinstance(start, int | float):
        _refuse(weight(items, _limit()) + weight(start, _limit()), "sum")
    return jinja_filters.do_sum(environment, items, attribute, start)


def _counted(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """`batch`/`slice`: their count pads or loops, so it may not pass the size budget."""

    def checked(value: Any, count: int, *args: Any, **kwargs: Any) -> Any:
        _refuse(count if isinstance(count, int) else 0, name)
        return function(value, count, *args, **kwargs)

    return checked


_replace.jinja_pass_arg = jinja_filters.do_replace.jinja_pass_arg  # type: ignore[attr-defined]  # eval_ctx first
_join.jinja_pass_arg = jinja_filters.do_join.jinja_pass_arg  # type: ignore[attr-defined]
_sum.jinja_pass_arg = jinja_filters.do_sum.jinja_pass_arg  # type: ignore[attr-defined]  # environment first

LIMITED_FILTERS: dict[str, Any] = {
    "center": _width_checked(jinja_filters.do_center, 1, "width"),
    "format": _format,
    "indent": _width_checked(jinja_filters.do_indent, 1, "width"),
    "replace": _replace,
    "join": _join,
    "sum": _sum,
    "batch": _counted(jinja_filters.do_batch, "batch"),
    "slice": _counted(jinja_filters.do_slice, "slice"),
}
