"""Field expressions: Jinja2 in an immutable sandbox with StrictUndefined, compiled once.

A field whose expression is a single value keeps its native type (`{{ age }}` stays an int).
The common shapes skip Jinja's render machinery: a constant, a dotted path (`{{ raw.properties.email }}`),
`not` of one, and a chain of plain filters with constant arguments (`{{ raw.name | default(none) | trim }}`)
compile, from Jinja's own parse tree, to direct lookups and filter calls with the same semantics
(a missing path is a StrictUndefined). Everything else renders through the sandbox (mappings/sandbox.py),
under the record's budget of loop steps, sizes and time (mappings/budget.py). A whole mapping then becomes one
generated function
(mappings/codegen.py). Any failure of an expression on a record is a RecordError naming the field; any
failure to compile one is a TemplateError naming the origin, the field and the line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError as JinjaError
from jinja2 import TemplateSyntaxError, Undefined, nodes
from jinja2.utils import _PassArg  # how @pass_context marks a filter; no public name for it

from mappings.budget import activate, active, deactivate, default_meter
from mappings.codegen import FastField, record_function
from mappings.errors import BudgetExceeded, MappingError, RecordError, TemplateError
from mappings.sandbox import budget_loops, native_concat
from mappings.sandbox import environment as _env

__all__ = ["CompiledMapping", "compile_expression", "compile_mapping"]

Renderer = Callable[[Mapping[str, Any]], Any]

_MISSING = object()
_MAX_TEMPLATE = 10_000  # characters of one field expression
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _defined(value: Any) -> Any:
    """The value, unless it is (or holds) an undefined one: StrictUndefined raises only when printed."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError, or SecurityError for a blocked attribute
    elif isinstance(value, list | tuple):
        for item in value:
            _defined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _defined(item)
    return value


def compile_expression(template: str, *, origin: str, field: str) -> Renderer:
    """A function that renders one field; a bad expression is a TemplateError naming origin, field and line."""
    if "{" not in template:
        return lambda _context: template
    if len(template) > _MAX_TEMPLATE:
        raise TemplateError(
            f"{origin}: field {field!r}: the expression is longer than {_MAX_TEMPLATE} characters",
            origin=origin,
            field=field,
        )
    try:
        return _compiled(template)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"{origin}: field {field!r}: {exc.message} (line {exc.lineno} of the expression {template!r})",
            origin=origin,
            field=field,
        ) from None
    except (JinjaError, RecursionError, MemoryError, ValueError, TypeError, ArithmeticError, LookupError) as exc:
        # Jinja's compiler can fail on inputs its parser accepted (constant folding, nesting too deep).
        raise TemplateError(
            f"{origin}: field {field!r}: cannot compile the expression ({type(exc).__name__}: {exc})",
            origin=origin,
            field=field,
        ) from None


@lru_cache(maxsize=4096)
def _compiled(template: str) -> Renderer:
    """One expression's renderer, compiled once per process: a renderer holds no state, and every poll of every
    connection builds its mapper again (parsing its templates was a sixth of a no-change poll's CPU)."""
    tree = _env.parse(template)
    fast = _compile_direct(tree)
    if fast is not None:
        return lambda context: _defined(fast(context))
    compiled = _env.from_string(budget_loops(tree))
    root = compiled.root_render_func
    template_globals = dict(compiled.globals)

    def render(context: Mapping[str, Any]) -> Any:
        # A shared context skips Jinja's per-render copy of its ChainMap of globals (half the cost).
        return _defined(native_concat(root(compiled.new_context({**template_globals, **context}, shared=True))))

    render.sandboxed = True  # type: ignore[attr-defined]  # it needs a meter (CompiledMapping.metered)
    return render


def plain_path(template: str) -> list[str] | None:
    """`["raw", "properties", "email"]` for `{{ raw.properties.email }}`; None for any other template."""
    path = _plain_path(template)
    return None if path is None else list(path)


@lru_cache(maxsize=4096)
def _plain_path(template: str) -> tuple[str, ...] | None:
    if "{" not in template:
        return None
    try:
        body = _env.parse(template).body
    except Exception:  # noqa: BLE001  # compile_expression reports bad templates
        return None
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    path = _path(body[0].nodes[0])
    return None if path is None else tuple(path)


def defaulted_path(template: str) -> tuple[list[str], Any] | None:
    """`(["raw", "fax"], None)` for `{{ raw.fax | default(none) }}` (one constant, no `boolean`); else None."""
    found = _defaulted_path(template)
    return None if found is None else (list(found[0]), found[1])


@lru_cache(maxsize=4096)
def _defaulted_path(template: str) -> tuple[tuple[str, ...], Any] | None:
    if "{" not in template:
        return None
    try:
        body = _env.parse(template).body
    except Exception:  # noqa: BLE001  # compile_expression reports bad templates
        return None
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    node = body[0].nodes[0]
    if not isinstance(node, nodes.Filter) or node.name not in ("default", "d") or node.node is None:
        return None
    if (
        node.kwargs
        or node.dyn_args
        or node.dyn_kwargs
        or len(node.args) != 1
        or not isinstance(node.args[0], nodes.Const)
    ):
        return None
    path = _path(node.node)
    return None if path is None else (tuple(path), node.args[0].value)


def _compile_direct(tree: nodes.Template) -> Renderer | None:
    """A direct renderer for `{{ <simple expression> }}`, or None when Jinja must render it."""
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    return _direct(body[0].nodes[0])


def _direct(node: nodes.Node) -> Renderer | None:
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda _context: value
    path = _path(node)
    if path is not None:
        return _lookup(path)
    if isinstance(node, nodes.Not):
        inner = _direct(node.node)
        return None if inner is None else lambda context: not inner(context)
    if isinstance(node, nodes.Filter) and node.node is not None:
        return _filter_call(node)
    if isinstance(node, nodes.Test):
        return _test_call(node)
    if isinstance(node, nodes.CondExpr) and node.expr2 is not None:  # without `else`, Jinja's message is kept
        test, then, otherwise = _direct(node.test), _direct(node.expr1), _direct(node.expr2)
        if test is None or then is None or otherwise is None:
            return None
        return lambda context: then(context) if test(context) else otherwise(context)
    return None


def _test_call(node: nodes.Test) -> Renderer | None:
    """`value is mapping` and the like: a plain test with constant arguments, called as Jinja calls it."""
    function: Callable[..., Any] | None = _env.tests.get(node.name)  # type: ignore[assignment]  # jinja types it as a bare `function`
    constant = all(isinstance(a, nodes.Const) for a in node.args) and all(
        isinstance(k.value, nodes.Const) for k in node.kwargs
    )
    inner = _direct(node.node)
    plain = function is not None and getattr(function, "jinja_pass_arg", None) is None
    if not plain or not constant or node.dyn_args or node.dyn_kwargs or inner is None or function is None:
        return None
    args = [a.value for a in node.args]  # type: ignore[attr-defined]  # checked to be Const above
    kwargs = {str(k.key): k.value.value for k in node.kwargs}  # type: ignore[attr-defined]
    return lambda context: function(inner(context), *args, **kwargs)


def _filter_call(node: nodes.Filter) -> Renderer | None:
    function = _env.filters.get(node.name)
    pass_arg = getattr(function, "jinja_pass_arg", None)
    plain = function is not None and pass_arg in (None, _PassArg.context)
    constant = all(isinstance(a, nodes.Const) for a in node.args) and all(
        isinstance(k.value, nodes.Const) for k in node.kwargs
    )
    inner = _direct(node.node) if node.node is not None else None
    if not plain or not constant or node.dyn_args or node.dyn_kwargs or inner is None or function is None:
        return None
    args = [a.value for a in node.args]  # type: ignore[attr-defined]  # checked to be Const above
    kwargs = {str(k.key): k.value.value for k in node.kwargs}  # type: ignore[attr-defined]
    if pass_arg is _PassArg.context:  # such filters only call `context.get(name)`, which a dict answers too
        return lambda context: function(context, inner(context), *args, **kwargs)
    return lambda context: function(inner(context), *args, **kwargs)


def _path(node: nodes.Node) -> list[str] | None:
    """`raw.properties.email` as ["raw", "properties", "email"]; None for anything else."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return [node.name]
    if isinstance(node, nodes.Getattr):
        parent = _path(node.node)
        return None if parent is None else [*parent, node.attr]
    return None


def _lookup(steps: list[str]) -> Renderer:
    name = ".".join(steps)

    def render(context: Mapping[str, Any]) -> Any:
        value: Any = context
        for step in steps:
            # `type() is dict` first: an isinstance check against the Mapping ABC costs more than the lookup.
            value = value.get(step, _MISSING) if type(value) is dict or isinstance(value, Mapping) else _MISSING
            if value is _MISSING:
                return _env.undefined(name=name)
        return value

    return render


class CompiledMapping:
    """Target field -> compiled expression, with where each field was defined."""

    def __init__(
        self,
        fields: Mapping[str, str],
        origins: Mapping[str, str],
        *,
        lookups: Mapping[str, Mapping[str, Any]] | None = None,
        tenant: str = "",
    ) -> None:
        self.templates = dict(fields)
        self.origins = dict(origins)
        self.lookups = {name: dict(table) for name, table in (lookups or {}).items()}
        self._renderers = []
        for target, template in fields.items():
            try:
                renderer = compile_expression(template, origin=self.origins.get(target, "?"), field=target)
            except TemplateError as exc:
                if tenant:
                    exc.tenant = tenant
                    exc.args = (f"tenant {tenant!r}: {exc}",)
                raise
            self._renderers.append((target, renderer))
        self.metered = any(getattr(renderer, "sandboxed", False) for _, renderer in self._renderers)
        self._fast = record_function(
            [
                FastField(
                    target,
                    renderer,
                    plain_path(fields[target]),
                    fields[target] if "{" not in fields[target] else None,
                    defaulted_path(fields[target]),
                )
                for target, renderer in self._renderers
            ]
        )

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Apply every field expression to one context; a failure is a RecordError naming the field.

        Within a RecordMapper the record's budget applies; called on its own, a render gets a default one."""
        if not self.metered or active() is not None:
            return self._render(context)
        token = activate(default_meter())
        try:
            return self._render(context)
        finally:
            deactivate(token)

    def _render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._fast(context)
        except BudgetExceeded:
            pass  # rendering again field by field names the field; the budget already spent still counts
        except Exception:  # noqa: BLE001  # the careful path below gives the exact result or error
            pass
        return self._render_each(context)

    def _render_each(self, context: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for target, renderer in self._renderers:
            try:
                result[target] = renderer(context)
            except BudgetExceeded as exc:
                raise BudgetExceeded(f"field {target!r}: {exc}", field=target, reason=exc.reason) from None
            except MappingError as exc:
                raise RecordError(f"field {target!r}: {exc}", field=target) from None
            except Exception as exc:  # noqa: BLE001  # any failure of one expression on one record is that record's
                raise RecordError(f"field {target!r}: {_describe(exc)}", field=target) from None
        return result


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def compile_mapping(fields: Mapping[str, str], *, origin: str) -> CompiledMapping:
    """Compile fields that all come from one place."""
    return CompiledMapping(fields, {target: origin for target in fields})
