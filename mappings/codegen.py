"""One Python function per mapping, so a record is rendered by a single call building one dict.

A field that is a plain reference (`{{ email }}`, `{{ raw.properties.email }}`) becomes a chain of
subscripts inlined in the function; a constant becomes a bound name; any other field calls its compiled
renderer. The generated text holds only `repr()`s of field names and path steps and names made here, so a
template cannot inject code. The fast function assumes every reference resolves through dicts: when one
does not (a missing key, a list or text on the way), it raises, and the mapping renders the record again
field by field, which gives the exact result or the exact error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Field", "record_function"]

Field = tuple[str, Callable[[Mapping[str, Any]], Any], list[str] | None, str | None]  # target, renderer, path, constant


def record_function(fields: Sequence[Field]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A function rendering every field of one context into a new dict, in the fields' order."""
    namespace: dict[str, Any] = {}
    entries = []
    for n, (target, renderer, path, constant) in enumerate(fields):
        if path is not None:
            value = "context" + "".join(f"[{step!r}]" for step in path)
        elif constant is not None:
            namespace[f"_c{n}"] = constant
            value = f"_c{n}"
        else:
            namespace[f"_r{n}"] = renderer
            value = f"_r{n}(context)"
        entries.append(f"        {target!r}: {value},")
    source = "\n".join(["def render(context):", "    return {", *entries, "    }"])
    exec(compile(source, "<mapping>", "exec"), namespace)  # noqa: S102  # see the module docstring
    function: Callable[[Mapping[str, Any]], dict[str, Any]] = namespace["render"]
    return function
