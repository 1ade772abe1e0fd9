"""One Python function per mapping, so a record is rendered by a single call building one dict.

A field that is a plain reference (`{{ email }}`, `{{ raw.properties.email }}`) becomes a chain of
subscripts inlined in the function; a reference with a constant default (`{{ raw.fax | default(none) }}`)
becomes subscripts ending in `.get(last step, default)`; a constant becomes a bound name; any other field calls
its compiled renderer. The generated text holds only `repr()`s of field names and path steps and names made here, so a
template cannot inject code. The fast function assumes every reference resolves through dicts: when one
does not (a missing key, a list or text on the way), it raises, and the mapping renders the record again
field by field, which gives the exact result or the exact error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["FastField", "record_function"]


class FastField(NamedTuple):
    """One field as the generated function renders it: the first shape that applies wins."""

    target: str
    renderer: Callable[[Mapping[str, Any]], Any]
    path: list[str] | None  # a plain reference
    constant: str | None  # text without an expression
    defaulted: tuple[list[str], Any] | None = None  # a reference with a constant default: (path, default)


def record_function(fields: Sequence[FastField]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A function rendering every field of one context into a new dict, in the fields' order."""
    namespace: dict[str, Any] = {}
    entries = []
    for n, (target, renderer, path, constant, defaulted) in enumerate(fields):
        if path is not None:
            value = "context" + "".join(f"[{step!r}]" for step in path)
        elif defaulted is not None:
            # `.get` only where the last step's parent is a dict: anything else raises, and the field is
            # rendered again by its renderer (a missing step on the way, a list, a text)
            *steps, last = defaulted[0]
            namespace[f"_d{n}"] = defaulted[1]
            parent = "context" + "".join(f"[{step!r}]" for step in steps)
            value = f"_get({parent}, {last!r}, _d{n})"
        elif constant is not None:
            namespace[f"_c{n}"] = constant
            value = f"_c{n}"
        else:
            namespace[f"_r{n}"] = renderer
            value = f"_r{n}(context)"
        entries.append(f"        {target!r}: {value},")
    namespace["_get"] = _get_from_dict
    source = "\n".join(["def render(context):", "    return {", *entries, "    }"])
    exec(compile(source, "<mapping>", "exec"), namespace)  # noqa: S102  # see the module docstring
    function: Callable[[Mapping[str, Any]], dict[str, Any]] = namespace["render"]
    return function


def _get_from_dict(parent: Any, key: str, default: Any) -> Any:
    """`parent.get(key, default)` for a dict; anything else raises, sending the record to the careful path."""
    if type(parent) is not dict:
        raise TypeError("not a dict")
    return parent.get(key, default)
