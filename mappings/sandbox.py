"""The Jinja environment every field expression runs in: immutable sandbox, native types, strict undefined,
and the per-record budget wired into the generated code.

A template compiled here cannot grow without limit or run forever: every `{% for %}` iterates through
`budgeted` (one step of the record's budget per item), `range()` is no longer than the iteration budget,
every call and operator looks at the clock, `~` and the output are size-checked, and the calls and filters
that can multiply their input are checked before they compute (mappings/limits.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, islice
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import Frame, optimizeconst
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mappings.budget import budgeted_range, current
from mappings.filters import FILTERS, GLOBALS
from mappings.limits import LIMITED_FILTERS, check_call, check_result, limited_binop, limited_join

__all__ = ["budget_loops", "environment", "native_concat"]

_BUDGETED = "mappings.budget.budgeted"


def native_concat(values: Iterable[Any]) -> Any:
    """One output node keeps its type; several are joined as text, refused past the size budget."""
    head = list(islice(values, 2))
    if not head:
        return None
    if len(head) == 1:
        return check_result(head[0])
    meter, parts, size = current(), [], 0
    for value in chain(head, values):
        text = str(value)
        size += len(text)
        meter.size(size, "the output")
        parts.append(text)
    return "".join(parts)


def budget_loops(tree: nodes.Template) -> nodes.Template:
    """Every `{% for x in items %}` of a parsed template iterates `budgeted(items)` instead."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.ImportedName(_BUDGETED), [loop.iter], [], None, None, lineno=loop.lineno)
    return tree


class _NativeCodeGenerator(NativeCodeGenerator):
    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> Any:
        # Jinja folds constant output to text at compile time; `{{ 1 }}` and `{{ none }}` keep their type.
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.limited_join((")  # `a ~ b`, size-checked
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class _NativeSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _NativeCodeGenerator
    concat = staticmethod(native_concat)
    limited_join = staticmethod(limited_join)
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return limited_binop(operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805  # Jinja's names
        meter = current()
        meter.tick()
        check_call(__obj, args, kwargs)
        meter.enter()
        try:
            return check_result(super().call(__context, __obj, *args, **kwargs))
        finally:
            meter.leave()


class _NativeSandboxTemplate(NativeTemplate):
    environment_class = _NativeSandbox  # type: ignore[assignment]  # jinja annotates the base env class


_NativeSandbox.template_class = _NativeSandboxTemplate
environment = _NativeSandbox(undefined=StrictUndefined, autoescape=False)
environment.filters.update(FILTERS)
environment.filters.update(LIMITED_FILTERS)
environment.globals.update(GLOBALS)
environment.globals["range"] = budgeted_range
for _name in ("lipsum", "cycler", "joiner"):  # text generators and stateful helpers no mapping needs
    del environment.globals[_name]
