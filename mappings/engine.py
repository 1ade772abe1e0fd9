"""Field expressions: Jinja2 in an immutable sandbox with StrictUndefined, compiled once.

A field whose expression is a single value keeps its native type (`{{ age }}` stays an int).
Plain references (`{{ raw.properties.email }}`, optionally `| default(none)`) skip Jinja entirely and
compile to a direct lookup: the hot path of a mapping is a handful of dict reads per field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from itertools import chain, islice
from typing import Any

from jinja2 import StrictUndefined, TemplateRuntimeError, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.compiler import Frame
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mappings.errors import RecordError, TemplateError

__all__ = ["CompiledMapping", "compile_expression", "compile_mapping"]

Renderer = Callable[[Mapping[str, Any]], Any]

# Name steps only: `raw.emails.0` is an item lookup in Jinja, so it takes the Jinja path.
_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
# Words Jinja reads as constants or operators, never as a variable: `{{ none }}` must not become a lookup.
_JINJA_WORDS = frozenset({"none", "None", "true", "True", "false", "False", "and", "or", "not", "in", "is", "if"})
_PLAIN = re.compile(rf"^\{{\{{\s*({_PATH})\s*\}}\}}$")
_WITH_NONE_DEFAULT = re.compile(rf"^\{{\{{\s*({_PATH})\s*\|\s*default\(\s*(?:none|None)\s*\)\s*\}}\}}$")
_MISSING = object()


def _native_concat(values: Iterable[Any]) -> Any:
    """One output node keeps its type; several are joined as text (no literal_eval guessing)."""
    head = list(islice(values, 2))
    if not head:
        return None
    if len(head) == 1:
        return head[0]
    return "".join(str(v) for v in chain(head, values))


def _defined(value: Any) -> Any:
    """The value, unless it is (or holds) an undefined one: StrictUndefined raises only when printed."""
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError, or SecurityError for a blocked attribute
    elif isinstance(value, list | tuple):
        for item in value:
            _defined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _defined(item)
    return value


class _NativeCodeGenerator(NativeCodeGenerator):
    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> Any:
        # Jinja folds constant output to text at compile time; `{{ 1 }}` and `{{ none }}` keep their type.
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)


class _NativeSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _NativeCodeGenerator
    concat = staticmethod(_native_concat)


class _NativeSandboxTemplate(NativeTemplate):
    environment_class = _NativeSandbox  # type: ignore[assignment]  # jinja annotates the base env class


_NativeSandbox.template_class = _NativeSandboxTemplate
_env = _NativeSandbox(undefined=StrictUndefined, autoescape=False)


def compile_expression(template: str, *, origin: str, field: str) -> Renderer:
    """A function that renders one field; a bad expression is a TemplateError naming origin, field and line."""
    match = _PLAIN.match(template) or _WITH_NONE_DEFAULT.match(template)
    if match and match.group(1).partition(".")[0] not in _JINJA_WORDS:
        return _lookup(match.group(1), strict=match.re is _PLAIN)
    try:
        compiled = _env.from_string(template)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"{origin}: field {field!r}: {exc.message} (line {exc.lineno} of the expression {template!r})",
            origin=origin,
            field=field,
        ) from None

    root = compiled.root_render_func
    template_globals = dict(compiled.globals)

    def render(context: Mapping[str, Any]) -> Any:
        # A shared context skips Jinja's per-render copy of its ChainMap of globals (half the cost).
        return _defined(_native_concat(root(compiled.new_context({**template_globals, **context}, shared=True))))

    return render


def _lookup(path: str, *, strict: bool) -> Renderer:
    steps = path.split(".")

    def render(context: Mapping[str, Any]) -> Any:
        value: Any = context
        for step in steps:
            value = value.get(step, _MISSING) if isinstance(value, Mapping) else _MISSING
            if value is _MISSING:
                if strict:
                    raise UndefinedError(f"{path!r} is undefined")
                return None
        return value

    return render


class CompiledMapping:
    """Target field -> compiled expression, with where each field was defined."""

    def __init__(self, fields: Mapping[str, str], origins: Mapping[str, str]) -> None:
        self.templates = dict(fields)
        self.origins = dict(origins)
        self._renderers = [
            (target, compile_expression(template, origin=self.origins.get(target, "?"), field=target))
            for target, template in fields.items()
        ]

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Apply every field expression to one context; a failure is a RecordError naming the field."""
        result: dict[str, Any] = {}
        for target, renderer in self._renderers:
            try:
                result[target] = renderer(context)
            except (TemplateRuntimeError, TypeError, ValueError, ArithmeticError) as exc:
                raise RecordError(f"field {target!r}: {exc}", field=target) from None
        return result


def compile_mapping(fields: Mapping[str, str], *, origin: str) -> CompiledMapping:
    """Compile fields that all come from one place."""
    return CompiledMapping(fields, {target: origin for target in fields})
