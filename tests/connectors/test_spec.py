"""connector.yaml validation: a bad file fails at load time, naming the file, the dotted path and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connectors import registry
from connectors.auth import BearerAuth, NoAuth
from connectors.errors import SpecError
from connectors.pagination import Cursor, SinglePage
from connectors.spec import ConnectorSpec, load_spec, placeholders

GOOD = """\
name: acme
title: Acme CRM
base_url: https://{subdomain}.acme.example/v2
auth: {type: bearer}
parameters:
  subdomain: {description: the tenant's subdomain}
collections:
  contacts:
    udm: users
    list:
      path: /contacts
      records_path: data
      paginator: {type: cursor, cursor_path: meta.next}
    get: {path: "/contacts/{id}"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problem(tmp_path: Path, text: str) -> str:
    """The SpecError message for a connector.yaml holding `text`."""
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(str(path))
    return str(caught.value)


def test_a_good_file_loads(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    contacts = spec.collections["contacts"]
    assert isinstance(spec.auth, BearerAuth) and isinstance(contacts.list.paginator, Cursor)
    assert contacts.get is not None and contacts.get.not_found == [404, 410]  # gone, or gone for good


def test_defaults_are_a_public_single_page_api(tmp_path: Path) -> None:
    spec = load_spec(
        write(tmp_path, "name: a\ntitle: A\nbase_url: https://a.example\ncollections: {c: {list: {path: /c}}}")
    )
    assert isinstance(spec.auth, NoAuth) and isinstance(spec.collections["c"].list.paginator, SinglePage)
    assert spec.retry.attempts >= 1 and spec.max_pages >= 1


def test_a_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = problem(tmp_path, GOOD.replace("records_path: data", "records_path: [data"))
    assert "not valid YAML at line 13" in message


def test_a_tab_indent_names_file_and_line(tmp_path: Path) -> None:
    assert "at line 2" in problem(tmp_path, "name: acme\n\ttitle: Acme\n")


def test_a_wrong_paginator_type_names_the_dotted_path_and_the_choices(tmp_path: Path) -> None:
    message = problem(tmp_path, GOOD.replace("type: cursor", "type: cursr"))
    assert "collections.contacts.list.paginator:" in message
    assert "'cursr'" in message and "'cursor', 'next_link', 'offset', 'page_number', 'keyset'" in message


def test_a_wrong_auth_type_names_the_path(tmp_path: Path) -> None:
    assert "auth: Input tag 'token'" in problem(tmp_path, GOOD.replace("{type: bearer}", "{type: token}"))


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("title: Acme CRM", "title: Acme CRM\ncolour: red", "colour"),
        ("records_path: data", "record_path: data", "collections.contacts.list.record_path"),
        (
            "cursor_path: meta.next}",
            "cursor_path: meta.next, size: 5}",
            "collections.contacts.list.paginator.cursor.size",
        ),
        ("udm: users", "udm: users\n    ids_path: id", "collections.contacts.ids_path"),
    ],
)
def test_an_unknown_key_is_rejected_naming_it(tmp_path: Path, old: str, new: str, where: str) -> None:
    message = problem(tmp_path, GOOD.replace(old, new))
    assert f"{where}: Extra inputs are not permitted" in message


def test_a_wrong_value_is_shown(tmp_path: Path) -> None:
    message = problem(tmp_path, GOOD.replace("name: acme", "name: Acme-CRM"))
    assert "name: String should match pattern" in message and "(got 'Acme-CRM')" in message


def test_every_problem_is_listed(tmp_path: Path) -> None:
    message = problem(tmp_path, GOOD.replace("title: Acme CRM\n", "").replace("path: /contacts", "pth: /contacts"))
    assert "3 problem(s)" in message
    assert "title: Field required" in message and "collections.contacts.list.path: Field required" in message


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("https://{subdomain}.acme", "https://{tenant}.acme", "tenant"),
        ("path: /contacts\n", "path: /{region}/contacts\n", "region"),
        ('"/contacts/{id}"', '"/{region}/contacts/{id}"', "region"),
        ("records_path: data", "records_path: data\n      params: {filter: '{region}'}", "region"),
        ("path: /contacts\n", "path: /contacts/{id}\n", "id"),  # only get.path knows the record id
    ],
)
def test_an_undeclared_placeholder_is_rejected(tmp_path: Path, old: str, new: str, name: str) -> None:
    message = problem(tmp_path, GOOD.replace(old, new))
    assert f"placeholders ['{name}'] are not declared under parameters" in message


def test_declared_placeholders_are_accepted(tmp_path: Path) -> None:
    text = GOOD.replace("path: /contacts\n", "path: /{subdomain}/contacts\n      params: {q: '{subdomain}'}\n")
    assert load_spec(write(tmp_path, text)).collections["contacts"].list.params == {"q": "{subdomain}"}


def test_a_get_path_needs_the_id(tmp_path: Path) -> None:
    message = problem(tmp_path, GOOD.replace('"/contacts/{id}"', '"/contacts/one"'))
    assert "collections.contacts.get: Value error, get.path must contain {id}" in message


@pytest.mark.parametrize(("text", "found"), [("- a\n- b\n", "list"), ("just text\n", "str"), ("", "NoneType")])
def test_the_top_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    assert f"expected a mapping at the top, found {found}" in problem(tmp_path, text)


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("template", "names"),
    [("/contacts", set()), ("https://{sub}.x/{id}", {"sub", "id"}), ("{a}{a}{b}", {"a", "b"}), ("{{literal}}", set())],
)
def test_placeholders(template: str, names: set[str]) -> None:
    assert placeholders(template) == names


def test_collection_for_finds_the_udm(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.collection_for("users") == "contacts"
    with pytest.raises(KeyError, match="acme has no collection with udm 'groups'"):
        spec.collection_for("groups")


# -- the connectors that ship with inlet -----------------------------------------------------------


def test_the_shipped_connectors_are_found() -> None:
    assert {"hubspot", "json_server", "kinto"} <= set(registry.available())


@pytest.mark.parametrize("name", registry.available())
def test_each_shipped_connector_yaml_loads(name: str) -> None:
    spec, _ = registry.load(name)
    assert isinstance(spec, ConnectorSpec) and spec.name == name
    assert [c.udm for c in spec.collections.values()].count("users") == 1  # exactly one provides users


def test_an_unknown_connector_names_the_available_ones() -> None:
    with pytest.raises(SpecError, match="no connector 'nope'; available: .*hubspot"):
        registry.load("nope")


def test_hubspot_ships_its_retry_after_hook() -> None:
    _, hooks = registry.load("hubspot")
    assert hooks.retry_after is not None


@pytest.mark.parametrize(
    ("writes", "expected"),
    [
        ("{fields: [a], update: {method: PATCH, path: /contacts}}", "writes.update.path must contain {id}"),
        ("{fields: [a], create: {method: POST, path: /contacts}}", "needs id_path"),
        ("{fields: [a]}", "at least one of create, update or delete"),
        ("{fields: [a], delete: {method: GET, path: '/c/{id}'}}", "collections.contacts.writes.delete.method"),
        ("{fields: [a], update: {method: PATCH, path: '/c/{id}'}, etag: {}}", "exactly one of etag.header"),
        ("{fields: [a], delete: {method: DELETE, path: '/{tenant}/c/{id}'}}", "placeholders ['tenant']"),
    ],
)
def test_a_bad_writes_section_names_what_is_wrong(tmp_path: Path, writes: str, expected: str) -> None:
    assert expected in problem(tmp_path, GOOD + f"    writes: {writes}\n")


def test_every_shipped_writes_section_loads_with_its_writable_fields() -> None:
    for name in registry.available():
        spec, _ = registry.load(name)
        declared = {c: w for c, w in ((c, s.writes) for c, s in spec.collections.items()) if w is not None}
        assert declared, f"{name} declares no writes"
        assert all(w.fields and w.calls() for w in declared.values())
