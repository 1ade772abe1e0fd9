"""The expression engine: native types, filters, strict undefined, load-time syntax errors and the sandbox."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mappings import CompiledMapping, RecordError, TemplateError, compile_expression, compile_mapping

RAW = {"id": "1001", "properties": {"email": "Ada@Example.org", "phone": None}, "emails": ["a@x.org", "b@x.org"]}


def render(template: str, context: dict[str, Any]) -> Any:
    return compile_expression(template, origin="test", field="out")(context)


COMPANY = "{{ (raw.company.name if raw.company is mapping else raw.company) | default(none) }}"  # json-server's


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("{{ n }}", {"n": 42}, 42),
        ("{{ s }}", {"s": "0012"}, "0012"),
        ("{{ f }}", {"f": 1.5}, 1.5),
        ("{{ flag }}", {"flag": False}, False),
        ("{{ nothing }}", {"nothing": None}, None),
        ("{{ tags }}", {"tags": ["a", "b"]}, ["a", "b"]),
        ("{{ raw.properties.email }}", {"raw": RAW}, "Ada@Example.org"),
        ("{{ raw.emails.1 }}", {"raw": RAW}, "b@x.org"),
        ("{{ n + 1 }}", {"n": 42}, 43),
        ("{{ 7 }}", {}, 7),
        ("{{ none }}", {}, None),
        ("{{ true }}", {}, True),
        ("{{ [1, 2] }}", {}, [1, 2]),
        ("{{ not raw.archived }}", {"raw": {"archived": False}}, True),
        ("{{ 'x' if flag else none }}", {"flag": False}, None),
        (COMPANY, {"raw": {"company": {"name": "Acme"}}}, "Acme"),
        (COMPANY, {"raw": {"company": "Acme Inc"}}, "Acme Inc"),
        (COMPANY, {"raw": {"company": None}}, None),
        (COMPANY, {"raw": {}}, None),
        ("{{ n is number }}", {"n": 4}, True),
        ("{{ n is divisibleby(3) }}", {"n": 4}, False),
        ("{{ missing is defined }}", {}, False),
        ("id-{{ n }}", {"n": 42}, "id-42"),
        ("{{ s }}{{ s }}", {"s": "0012"}, "00120012"),
        ("{{ first }} {{ last }}", {"first": "Ada", "last": "Lovelace"}, "Ada Lovelace"),
        ("plain text", {}, "plain text"),
        ("{{ raw.properties.email | lower }}", {"raw": RAW}, "ada@example.org"),
        ("{{ missing | default('n/a') }}", {}, "n/a"),
        ("{{ missing | default(none) }}", {}, None),
        ("{{ raw.properties.fax | default(none) }}", {"raw": RAW}, None),
        ("{{ raw.nested.deeper | default(none) }}", {"raw": RAW}, None),
        ("{{ raw.emails | join(', ') }}", {"raw": RAW}, "a@x.org, b@x.org"),
        ("{{ [first, last] | select | join(' ') }}", {"first": "Ada", "last": None}, "Ada"),
        ("{{ [first, last] | select | join(' ') or none }}", {"first": None, "last": None}, None),
    ],
)
def test_renders(template: str, context: dict[str, Any], expected: Any) -> None:
    result = render(template, context)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "context"),
    [
        (COMPANY, {"raw": {"company": {"name": "Acme"}}}),
        (COMPANY, {"raw": {"company": ["Acme"]}}),
        (COMPANY, {"raw": {"company": 7}}),
        (COMPANY, {"raw": {}}),
        ("{{ raw.a if raw.b is string else raw.c | default(3) }}", {"raw": {"a": 1, "b": "x"}}),
        ("{{ raw.a if raw.b is string else raw.c | default(3) }}", {"raw": {"a": 1, "b": 2}}),
        ("{{ raw.a if raw.b is none else 'no' }}", {"raw": {"a": 1, "b": None}}),
    ],
)
def test_conditions_and_tests_on_the_fast_path_equal_the_jinja_result(template: str, context: dict[str, Any]) -> None:
    # Inside a block the same expression is off the fast path, so Jinja renders it.
    assert render(template, context) == render("{% if true %}" + template + "{% endif %}", context)


@pytest.mark.parametrize(
    ("path", "context"),
    [
        ("n", {"n": 42}),
        ("s", {"s": "0012"}),
        ("raw.properties.email", {"raw": RAW}),
        ("raw.properties.phone", {"raw": RAW}),
        ("raw.emails", {"raw": RAW}),
    ],
)
def test_plain_path_fast_path_equals_the_jinja_result(path: str, context: dict[str, Any]) -> None:
    # Parentheses keep the same expression off the fast path, so Jinja renders it.
    assert render(f"{{{{ {path} }}}}", context) == render(f"{{{{ ({path}) }}}}", context)
    assert render(f"{{{{ {path} | default(none) }}}}", context) == render(
        f"{{{{ ({path}) | default(none) }}}}", context
    )


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("{{ raw.properties.email | default(none) }}", {"raw": RAW}),
        ("{{ raw.properties.fax | default('n/a') }}", {"raw": RAW}),
        ("{{ raw.properties.phone | default('n/a') }}", {"raw": RAW}),
        ("{{ raw.nested.deeper | default(none) }}", {"raw": RAW}),
        ("{{ raw.emails.first | default(none) }}", {"raw": RAW}),
        ("{{ raw.id.x | default(none) }}", {"raw": RAW}),
        ("{{ missing | d(0) }}", {}),
    ],
)
def test_defaulted_reference_in_the_generated_function_equals_field_by_field(
    template: str, context: dict[str, Any]
) -> None:
    mapping = compile_mapping({"out": template, "id": "{{ raw.id | default(none) }}"}, origin="test")
    assert mapping.render(context) == mapping._render_each(context)


@pytest.mark.parametrize(
    "template", ["{{ email }}", "{{ raw.properties.fax }}", "{{ email | lower }}", "{{ (email) }}", "{{ [email] }}"]
)
def test_missing_field_is_a_record_error_naming_the_field(template: str) -> None:
    mapping = compile_mapping({"contactEmail": template}, origin="users.yaml")
    with pytest.raises(RecordError, match="field 'contactEmail'") as caught:
        mapping.render({"raw": RAW})
    assert caught.value.field == "contactEmail"


@pytest.mark.parametrize(
    "template", ["{{ n + 'x' }}", "{{ 1 / 0 }}", "{{ range(10 ** 9) | list }}", "{{ raw | map('nosuch') | list }}"]
)
def test_failing_expression_is_a_record_error(template: str) -> None:
    with pytest.raises(RecordError, match="field 'out'"):
        compile_mapping({"out": template}, origin="users.yaml").render({"n": 1, "raw": RAW})


@pytest.mark.parametrize(
    ("template", "line"),
    [
        ("{{ email | }}", 1),
        ("{{ email | nosuchfilter }}", 1),
        ("{% if email %}\n{{ email }\n{% endif %}", 2),
        ("{{ email ", 1),
    ],
)
def test_syntax_error_names_origin_field_and_line(template: str, line: int) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_mapping({"email": template}, origin="tenants/acme/users.yaml")
    assert (caught.value.origin, caught.value.field) == ("tenants/acme/users.yaml", "email")
    assert "tenants/acme/users.yaml" in str(caught.value) and "'email'" in str(caught.value)
    assert f"line {line}" in str(caught.value)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",
        "{{ raw.__class__.__base__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ (cycler).__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ self._TemplateReference__context }}",
        "{{ (self)._TemplateReference__context }}",
        "{{ lipsum.__globals__ }}",
        "{{ (lipsum).__globals__['os'] }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ [].append(1) }}",
        "{{ raw.pop('id') }}",
        "{{ raw.update(id='0') }}",
        "{{ config }}",
        "{{ request }}",
        "{{ config.items() }}",
        "{{ range.__self__ }}",
    ],
)
def test_sandbox_escapes_are_record_errors(template: str) -> None:
    context = {"raw": dict(RAW)}
    with pytest.raises(RecordError):
        compile_mapping({"out": template}, origin="users.yaml").render(context)
    assert context["raw"] == RAW


def test_sandbox_error_says_the_access_is_unsafe() -> None:
    with pytest.raises(RecordError, match="unsafe"):
        compile_mapping({"out": "{{ ''.__class__.__mro__ }}"}, origin="users.yaml").render({})


def test_mapping_renders_every_field_and_keeps_origins() -> None:
    mapping = CompiledMapping(
        {"email": "{{ raw.properties.email | lower }}", "crmId": "{{ raw.id }}"},
        {"email": "users.yaml", "crmId": "apps/hubspot/users.yaml"},
    )
    assert mapping.render({"raw": RAW}) == {"email": "ada@example.org", "crmId": "1001"}
    assert mapping.origins == {"email": "users.yaml", "crmId": "apps/hubspot/users.yaml"}
    assert mapping.templates["crmId"] == "{{ raw.id }}"


def test_compiled_mapping_is_reused_across_records() -> None:
    mapping = compile_mapping({"id": "{{ raw.id }}", "label": "n{{ raw.id }}"}, origin="users.yaml")
    results = [mapping.render({"raw": {"id": n}}) for n in range(3)]
    assert results == [{"id": 0, "label": "n0"}, {"id": 1, "label": "n1"}, {"id": 2, "label": "n2"}]


@pytest.mark.parametrize(
    "context",
    [
        {"raw": RAW, "email": "a@x.org"},
        {"raw": {"id": 7, "properties": "text, not a dict"}, "email": None},
        {"raw": {"id": 7, "properties": {"email": ["a", "b"]}}, "email": 3},
    ],
)
def test_the_generated_function_equals_rendering_field_by_field(context: dict[str, Any]) -> None:
    mapping = compile_mapping(
        {
            "email": "{{ email }}",
            "id": "{{ raw.id }}",
            "deep": "{{ raw.properties.email | default('none') }}",
            "label": "n{{ raw.id }}",
            "const": "fixed",
        },
        origin="users.yaml",
    )
    assert mapping.render(context) == mapping._render_each(context)


def test_field_names_and_paths_cannot_inject_code_into_the_generated_function() -> None:
    target = "x': __import__('os').getcwd(), 'y"
    mapping = compile_mapping({target: "{{ raw.a }}", "b": "{{ raw[\"'] + 1 + ['\"] }}"}, origin="users.yaml")
    assert mapping.render({"raw": {"a": 1, "'] + 1 + ['": 2}}) == {target: 1, "b": 2}


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__()[40]('/etc/passwd').read() }}",
        "{{ ''|attr('__class__') }}",
        "{{ raw|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
        "{{ lookups.__class__.__init__.__globals__ }}",
        "{{ '{0.__class__.__init__.__globals__}'.format(raw) }}",
        "{{ '%s' | format(raw.__class__) }}",
        "{{ range.__init__.__globals__['__builtins__'] }}",
        "{{ dict.__base__.__subclasses__() }}",
        "{{ coalesce.__globals__['hashlib'] }}",
        "{{ namespace.__init__.__globals__ }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{% include '/etc/passwd' %}",
        "{% import 'os' as os %}{{ os.getcwd() }}",
        "{% extends '/etc/hostname' %}",
        "{% set x = raw.__setitem__('id', 0) %}{{ x }}",
        "{{ raw.properties.setdefault('hacked', 1) }}",
        "{{ raw.emails.append('x') }}",
    ],
)
def test_classic_sandbox_escapes_reach_nothing(template: str) -> None:
    context: dict[str, Any] = {"raw": copy.deepcopy(RAW), "lookups": {}}
    with pytest.raises((RecordError, TemplateError)):
        compile_mapping({"out": template}, origin="users.yaml").render(context)
    assert context["raw"] == RAW
