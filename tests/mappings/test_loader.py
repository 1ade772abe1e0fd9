"""Mapping layers: default, app and tenant files, later wins field by field, bad files fail when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mappings import TemplateError, effective_mapping, read_layer
from mappings.loader import MAPPINGS_DIR
from tests.mappings.conftest import Layers

DEFAULT = """\
data_source: users
fields:
  email: "{{ email }}"
  fullName: "{{ full_name }}"
  phone: "{{ phone }}"
"""


def test_later_layers_win_field_by_field_and_null_removes(layers: Layers) -> None:
    default = layers.default(DEFAULT)
    app = layers.app("hubspot", 'fields:\n  fullName: "{{ first_name }}"\n  crmId: "{{ raw.id }}"\n')
    tenant = layers.tenant("acme", 'fields:\n  email: "{{ email | lower }}"\n  phone: null\n')
    mapping = effective_mapping("users", app="hubspot", tenant="acme", overrides_dir=layers.overrides)
    assert mapping.templates == {
        "email": "{{ email | lower }}",
        "fullName": "{{ first_name }}",
        "crmId": "{{ raw.id }}",
    }
    assert mapping.origins == {"email": str(tenant), "fullName": str(app), "crmId": str(app)}
    assert str(default) not in mapping.origins.values()


def test_a_field_removed_by_the_app_comes_back_in_the_tenant_layer(layers: Layers) -> None:
    layers.default(DEFAULT)
    layers.app("hubspot", "fields:\n  phone: null\n")
    tenant = layers.tenant("acme", 'fields:\n  phone: "{{ raw.properties.mobilephone }}"\n')
    mapping = effective_mapping("users", app="hubspot", tenant="acme", overrides_dir=layers.overrides)
    assert mapping.templates["phone"] == "{{ raw.properties.mobilephone }}"
    assert mapping.origins["phone"] == str(tenant)


@pytest.mark.parametrize(
    ("app", "tenant", "with_overrides"), [(None, None, True), ("zendesk", "globex", True), ("hubspot", "acme", False)]
)
def test_absent_layers_leave_the_default(
    layers: Layers, app: str | None, tenant: str | None, with_overrides: bool
) -> None:
    default = layers.default(DEFAULT)
    layers.app("hubspot", "fields:\n  phone: null\n")
    layers.tenant("acme", "fields:\n  email: null\n")
    overrides = layers.overrides if with_overrides else None
    mapping = effective_mapping("users", app=app, tenant=tenant, overrides_dir=overrides)
    expected = ["email", "fullName"] if app == "hubspot" else ["email", "fullName", "phone"]
    assert list(mapping.templates) == expected
    assert mapping.origins["email"] == str(default)


def test_one_tenants_layer_is_not_used_for_another(layers: Layers) -> None:
    layers.default(DEFAULT)
    layers.tenant("acme", 'fields:\n  email: "{{ raw.secret_acme_field }}"\n')
    mapping = effective_mapping("users", tenant="globex", overrides_dir=layers.overrides)
    assert mapping.templates["email"] == "{{ email }}"


def test_no_default_mapping_is_a_template_error(layers: Layers) -> None:
    with pytest.raises(TemplateError, match="no default mapping for data source 'deals'"):
        effective_mapping("deals")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('data_source: users\nfields:\n  email: "{{ email }}\n', 4),  # an unclosed quote ends at the end
        ("data_source: users\nfields:\n  email: [unclosed\n  name: x\n", 4),
        ("data_source: users\nfields:\n\temail: x\n", 3),
        ("data_source: users\nfields:\n  email: x\n name: y\n", 4),
    ],
)
def test_bad_yaml_names_the_file_and_the_line(layers: Layers, text: str, line: int) -> None:
    path = layers.tenant("acme", text)
    with pytest.raises(TemplateError, match=rf"not valid YAML at line {line}") as caught:
        read_layer(path, data_source="users")
    assert str(caught.value).startswith(str(path)) and caught.value.origin == str(path)


@pytest.mark.parametrize(("value", "kind"), [("true", "bool"), ("12", "int"), ("[a, b]", "list"), ("{x: 1}", "dict")])
def test_a_field_that_is_not_a_string_is_rejected_by_name(layers: Layers, value: str, kind: str) -> None:
    path = layers.app("hubspot", f'fields:\n  email: "{{{{ email }}}}"\n  active: {value}\n')
    with pytest.raises(
        TemplateError, match=f"field 'active' must be a string expression or null, got {kind}"
    ) as caught:
        read_layer(path, data_source="users")
    assert (caught.value.origin, caught.value.field) == (str(path), "active")


def test_data_source_mismatch_is_a_template_error(layers: Layers) -> None:
    path = layers.tenant("acme", 'data_source: contacts\nfields:\n  email: "{{ email }}"\n')
    with pytest.raises(TemplateError, match="data_source is 'contacts', expected 'users'"):
        read_layer(path, data_source="users")


@pytest.mark.parametrize("text", ["", "just a string\n", "- a\n- b\n", "data_source: users\n", "fields: [a, b]\n"])
def test_a_file_without_a_fields_table_is_a_template_error(layers: Layers, text: str) -> None:
    path = layers.tenant("acme", text)
    with pytest.raises(TemplateError, match="expected a mapping with a `fields:` table"):
        read_layer(path, data_source="users")


def test_read_layer_keeps_null_as_a_removal(layers: Layers) -> None:
    path = layers.app("hubspot", 'fields:\n  email: "{{ email }}"\n  phone: null\n')
    layer = read_layer(path, data_source="users")
    assert (layer.origin, layer.fields) == (str(path), {"email": "{{ email }}", "phone": None})


def test_bad_expression_in_a_layer_names_that_file_and_field(layers: Layers) -> None:
    layers.default(DEFAULT)
    tenant = layers.tenant("acme", 'fields:\n  fullName: "{{ first_name ~ }}"\n')
    with pytest.raises(TemplateError, match="line 1") as caught:
        effective_mapping("users", tenant="acme", overrides_dir=layers.overrides)
    assert (caught.value.origin, caught.value.field) == (str(tenant), "fullName")


def test_shipped_default_users_mapping_compiles() -> None:
    path = MAPPINGS_DIR / "users.yaml"
    mapping = effective_mapping("users")
    assert list(mapping.templates) == list(yaml.safe_load(path.read_text())["fields"])
    assert set(mapping.origins.values()) == {str(path)}
    assert Path(next(iter(mapping.origins.values()))).is_file()
