"""App schemas: mappings are checked against them when saved or loaded, records when mapped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mappings import AppSchema, RecordError, RecordMapper, SchemaMismatch, TemplateError, compile_mapping, read_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["email", "fullName"],
    "properties": {
        "email": {"type": "string", "format": "email"},
        "fullName": {"type": "string", "minLength": 1},
        "title": {"type": ["string", "null"], "maxLength": 5},
        "age": {"type": "integer", "minimum": 0},
        "sourceUpdatedAt": {"type": ["string", "null"]},
    },
}


def schema() -> AppSchema:
    return AppSchema(SCHEMA, origin="app schema users")


def test_a_mapping_covering_the_required_fields_passes() -> None:
    schema().check_mapping(["email", "fullName", "title"], tenant="acme")


def test_unknown_target_field_names_tenant_field_and_reason() -> None:
    with pytest.raises(SchemaMismatch, match="tenant 'acme': field 'nickname' .*has no such field") as caught:
        schema().check_mapping(["email", "fullName", "nickname"], tenant="acme", origins={"nickname": "store"})
    assert (caught.value.tenant, caught.value.field) == ("acme", "nickname")


def test_required_field_unmapped_names_tenant_field_and_reason() -> None:
    with pytest.raises(SchemaMismatch, match="tenant 'acme': field 'fullName': required by the app schema"):
        schema().check_mapping(["email"], tenant="acme")


@pytest.mark.parametrize(
    ("record", "field", "rule"),
    [
        ({"fullName": "Ada"}, "email", "required"),
        ({"email": "a@x.org", "fullName": ""}, "fullName", "minLength"),
        ({"email": "a@x.org", "fullName": "Ada", "title": "Countess"}, "title", "maxLength"),
        ({"email": "a@x.org", "fullName": "Ada", "age": "12"}, "age", "type"),
        ({"email": "not-an-address", "fullName": "Ada"}, "email", "format"),
    ],
)
def test_record_failing_the_schema_is_a_record_error_naming_field_and_rule(
    record: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(RecordError, match=rule) as caught:
        schema().validate(record)
    assert caught.value.field == field
    assert "Countess" not in str(caught.value)  # the error names the rule, never the value


def test_datetimes_pass_as_strings() -> None:
    schema().validate({"email": "a@x.org", "fullName": "Ada", "sourceUpdatedAt": datetime.now(UTC)})


def test_an_invalid_json_schema_fails_when_read(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("type: object\nproperties:\n  email: {type: strng}\n")
    with pytest.raises(TemplateError, match=r"users\.yaml: not a valid JSON Schema at properties/email/type"):
        read_schema(path)


def test_schema_file_may_wrap_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("schema:\n  type: object\n  properties: {email: {type: string}}\n  required: [email]\n")
    assert read_schema(path).required == ["email"]


def test_mapper_checks_each_mapped_record_against_the_schema() -> None:
    mapper = RecordMapper(
        data_source="users",
        udm_fields={"id": "{{ raw.id }}", "email": "{{ raw.email }}", "title": "{{ raw.title }}"},
        app_mapping=compile_mapping(
            {"email": "{{ email }}", "fullName": "{{ email }}", "title": "{{ title }}"}, origin="t"
        ),
        origin="test",
        schema=schema(),
    )
    assert mapper.map({"id": 1, "email": "a@x.org", "title": "Dr"})["title"] == "Dr"
    with pytest.raises(RecordError, match="field 'title': breaks the app schema rule maxLength 5"):
        mapper.map({"id": 2, "email": "a@x.org", "title": "Countess"})


@pytest.mark.parametrize(
    ("record", "valid"),
    [
        ({"email": "a@x.org", "fullName": "Ada"}, True),
        ({"email": "a@x.org", "fullName": "Ada", "sourceUpdatedAt": datetime(2026, 1, 1, tzinfo=UTC)}, True),
        ({"email": "a@x.org", "fullName": "Ada", "title": None}, True),
        ({"email": "a@x.org"}, False),
        ({"email": "a@x.org", "fullName": "Ada", "age": -1}, False),
        ({"email": "a@x.org", "fullName": "Ada", "age": 1.5}, False),
    ],
)
def test_the_fast_check_and_jsonschema_agree(record: dict[str, Any], valid: bool) -> None:
    fast = schema()._fast
    assert fast is not None
    try:
        schema().validate(record)
        verdict = True
    except RecordError:
        verdict = False
    assert verdict is valid


def test_schemas_with_newer_keywords_are_checked_by_jsonschema_alone() -> None:
    newer = AppSchema(
        {"type": "object", "properties": {"tags": {"type": "array", "prefixItems": [{"type": "integer"}]}}},
        origin="t",
    )
    assert newer._fast is None
    with pytest.raises(RecordError, match="field 'tags.0'"):
        newer.validate({"tags": ["x"]})
