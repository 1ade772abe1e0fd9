"""Property tests: whatever the template and the record, the engine answers with a value or a mapping error."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings import MappingError, RecordError, TemplateError, compile_mapping
from mappings.sandbox import environment as _env

FILTER_NAMES = sorted(_env.filters)
NAMES = ["raw", "email", "full_name", "lookups", "none", "true", "range", "dict", "coalesce", "namespace", "self"]
ATTRIBUTES = ["id", "email", "tags", "a", "b", "0", "__class__", "__globals__", "__init__", "mro", "items", "pop"]
OPERATORS = ["+", "-", "*", "/", "//", "%", "~", "**", "and", "or", "==", "<", "in", "is"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(ATTRIBUTES), children, max_size=4)
    ),
    max_leaves=12,
)
atoms = (
    st.sampled_from(NAMES)
    | st.integers(-300, 300).map(str)
    | st.text(alphabet="ab%d,. _-", max_size=6).map(repr)
    | st.sampled_from(ATTRIBUTES).map(lambda a: f"raw.{a}")
)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arguments = st.lists(children, max_size=2).map(", ".join)
    return (
        st.tuples(children, st.sampled_from(OPERATORS), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        | st.tuples(children, st.sampled_from(FILTER_NAMES), arguments).map(lambda t: f"{t[0]} | {t[1]}({t[2]})")
        | st.tuples(children, st.sampled_from(ATTRIBUTES)).map(lambda t: f"{t[0]}.{t[1]}")
        | st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]")
        | st.tuples(children, arguments).map(lambda t: f"{t[0]}({t[1]})")
        | st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})")
        | st.lists(children, max_size=3).map(lambda items: f"[{', '.join(items)}]")
        | children.map(lambda c: f"not {c}")
    )


expressions = st.recursive(atoms, _extend, max_leaves=8)
templates = (
    expressions.map(lambda e: "{{ " + e + " }}") | st.text(max_size=40) | expressions.map(lambda e: f"x{{{{ {e} }}}}y")
)


def outcome(template: str, record: Any) -> Any:
    try:
        mapping = compile_mapping({"out": template}, origin="property")
    except TemplateError:
        return "template error"
    try:
        return mapping.render({"raw": record, "email": "a@x.org", "full_name": "Ada L", "lookups": {"t": {"a": 1}}})
    except RecordError:
        return "record error"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=templates, record=json_values)
def test_any_template_gives_a_value_or_a_mapping_error(template: str, record: Any) -> None:
    try:
        outcome(template, record)
    except MappingError as exc:  # pragma: no cover - a failure message for the shrinker
        raise AssertionError(f"{template!r} raised {type(exc).__name__} outside compile and render") from exc


@settings(max_examples=200, deadline=None)
@given(template=expressions.map(lambda e: "{{ " + e + " }}"), record=json_values)
def test_rendering_never_changes_the_record(template: str, record: Any) -> None:
    before = repr(record)
    outcome(template, record)
    assert repr(record) == before


paths = st.lists(st.sampled_from(["raw", "a", "b", "id", "0"]), min_size=1, max_size=4).map(".".join)
defaults = st.sampled_from(["none", "'n/a'", "0", "false"])
plain_mappings = st.dictionaries(
    st.text(min_size=1, max_size=8),
    paths.map(lambda p: "{{ " + p + " }}")
    | st.tuples(paths, defaults).map(lambda t: "{{ " + t[0] + " | default(" + t[1] + ") }}")
    | st.text(max_size=5),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(fields=plain_mappings, record=json_values)
def test_the_generated_function_agrees_with_rendering_field_by_field(fields: dict[str, str], record: Any) -> None:
    try:
        mapping = compile_mapping(fields, origin="property")
    except TemplateError:
        return
    context = {"raw": record, "a": record, "b": {"id": 1}}
    results: list[object] = []
    for render in (mapping.render, mapping._render_each):
        try:
            results.append(render(context))
        except RecordError as exc:
            results.append(str(exc))
    assert results[0] == results[1]
