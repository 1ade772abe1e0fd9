"""Stored mapping layers: saved only when valid, layered per tenant and connection, never shared across tenants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, select

from inlet.mapping import Change, build_mapper, mapping_for, reset, save
from inlet.settings import Settings
from inlet.store import Connection, MappingOverride, Vault, add_connection, add_tenant
from mappings import RecordError, SchemaMismatch, TemplateError

SCHEMA = """\
type: object
required: [email, fullName]
properties:
  email: {type: string}
  fullName: {type: string}
  firstName: {type: [string, "null"]}
  lastName: {type: [string, "null"]}
  phone: {type: string}
  company: {type: [string, "null"]}
  title: {type: [string, "null"]}
  active: {type: [boolean, "null"]}
  sourceUpdatedAt: {type: [string, "null"]}
  crmId: {type: string}
"""
RAW = {
    "id": "1001",
    "properties": {
        "email": "Ada@Example.org",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "phone": None,
        "company": None,
        "jobtitle": "Countess",
    },
    "createdAt": "2026-11-20T09:00:00Z",
    "updatedAt": "2026-11-24T17:24:49Z",
    "archived": False,
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", secret_key=SecretStr(Fernet.generate_key().decode()))


@pytest.fixture
def store(engine: Engine, settings: Settings) -> Engine:
    """Tenants acme (two HubSpot connections) and globex (one)."""
    vault = Vault.from_settings(settings)
    for tenant, connections in (("acme", ["acme-hs", "acme-hs2"]), ("globex", ["globex-hs"])):
        add_tenant(engine, tenant)
        for connection in connections:
            add_connection(
                engine, vault, tenant_id=tenant, connection_id=connection, app="hubspot", parameters={}, credentials={}
            )
    return engine


def with_schema(settings: Settings, text: str = SCHEMA) -> None:
    folder = settings.home / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.yaml").write_text(text)


def connection(engine: Engine, connection_id: str) -> Connection:
    with Session(engine) as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        return row


def templates(engine: Engine, settings: Settings, connection_id: str) -> dict[str, str]:
    return mapping_for(engine, settings, connection(engine, connection_id), "users").templates


def stored(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [row.model_dump(exclude={"updated_at"}) for row in session.exec(select(MappingOverride))]


def test_tenant_layer_applies_to_every_connection_of_that_tenant_only(store: Engine, settings: Settings) -> None:
    save(store, settings, "acme", None, "users", Change(set_fields={"email": "{{ email | lower }}"}))
    assert templates(store, settings, "acme-hs")["email"] == "{{ email | lower }}"
    assert templates(store, settings, "acme-hs2")["email"] == "{{ email | lower }}"
    assert templates(store, settings, "globex-hs")["email"] == "{{ email }}"


def test_connection_layer_wins_over_the_tenant_layer(store: Engine, settings: Settings) -> None:
    save(store, settings, "acme", None, "users", Change(set_fields={"title": "{{ title | upper }}"}))
    save(store, settings, "acme", "acme-hs", "users", Change(set_fields={"title": "{{ title | lower }}"}))
    mapping = mapping_for(store, settings, connection(store, "acme-hs"), "users")
    assert mapping.templates["title"] == "{{ title | lower }}"
    assert mapping.origins["title"] == "store: connection acme-hs"
    assert templates(store, settings, "acme-hs2")["title"] == "{{ title | upper }}"


def test_unset_goes_back_to_the_lower_layer_and_remove_drops_the_field(store: Engine, settings: Settings) -> None:
    save(store, settings, "acme", None, "users", Change(set_fields={"phone": None, "email": "{{ email | upper }}"}))
    assert "phone" not in templates(store, settings, "acme-hs")
    save(store, settings, "acme", None, "users", Change(unset_fields=("phone", "email")))
    assert templates(store, settings, "acme-hs")["phone"] == "{{ phone }}"
    assert templates(store, settings, "acme-hs")["email"] == "{{ email }}"


def test_reset_drops_the_stored_layer(store: Engine, settings: Settings) -> None:
    save(store, settings, "acme", "acme-hs", "users", Change(set_fields={"crmId": "{{ raw.id }}"}))
    assert reset(store, settings, "acme", "acme-hs", "users") is True
    assert stored(store) == [] and "crmId" not in templates(store, settings, "acme-hs")
    assert reset(store, settings, "acme", "acme-hs", "users") is False


def test_bad_expression_is_refused_naming_tenant_and_field_and_nothing_is_saved(
    store: Engine, settings: Settings
) -> None:
    with pytest.raises(TemplateError, match=r"tenant 'acme': .*field 'email': .*line 1") as caught:
        save(store, settings, "acme", None, "users", Change(set_fields={"email": "{{ email | }}"}))
    assert (caught.value.tenant, caught.value.field) == ("acme", "email")
    assert stored(store) == []


def test_unknown_target_field_is_refused_when_the_schema_lacks_it(store: Engine, settings: Settings) -> None:
    with_schema(settings)
    with pytest.raises(SchemaMismatch, match="tenant 'acme': field 'nickname' .*has no such field"):
        save(store, settings, "acme", "acme-hs", "users", Change(set_fields={"nickname": "{{ first_name }}"}))
    assert stored(store) == []


def test_unmapping_a_required_field_is_refused(store: Engine, settings: Settings) -> None:
    with_schema(settings)
    with pytest.raises(SchemaMismatch, match="tenant 'globex': field 'fullName': required by the app schema"):
        save(store, settings, "globex", None, "users", Change(set_fields={"fullName": None}))
    assert stored(store) == []


def test_records_failing_the_schema_are_record_errors(store: Engine, settings: Settings) -> None:
    with_schema(settings)
    mapper = build_mapper(store, settings, connection(store, "acme-hs"), "users")
    with pytest.raises(RecordError, match="field 'phone': breaks the app schema rule type"):
        mapper.map(RAW)
    save(store, settings, "acme", None, "users", Change(set_fields={"phone": "{{ coalesce(phone, 'none') }}"}))
    assert build_mapper(store, settings, connection(store, "acme-hs"), "users").map(RAW)["phone"] == "none"


def test_lookup_tables_are_per_tenant(store: Engine, settings: Settings) -> None:
    change = Change(
        set_fields={"company": "{{ raw.properties.firstname | lookup('accounts', 'other') }}"},
        lookups={"accounts": {"Ada": "Analytical Engines"}},
    )
    save(store, settings, "acme", None, "users", change)
    acme = build_mapper(store, settings, connection(store, "acme-hs"), "users")
    globex = build_mapper(store, settings, connection(store, "globex-hs"), "users")
    assert acme.map(RAW)["company"] == "Analytical Engines" and acme.lookups == {
        "accounts": {"Ada": "Analytical Engines"}
    }
    assert globex.lookups == {} and "company" in globex.map(RAW)


def test_a_lookup_of_a_table_the_tenant_lacks_is_a_record_error(store: Engine, settings: Settings) -> None:
    save(store, settings, "globex", None, "users", Change(set_fields={"company": "{{ title | lookup('accounts') }}"}))
    with pytest.raises(RecordError, match="no lookup table 'accounts'"):
        build_mapper(store, settings, connection(store, "globex-hs"), "users").map(RAW)


def test_a_connection_of_another_tenant_cannot_be_given_a_layer(store: Engine, settings: Settings) -> None:
    from inlet.errors import NotFound

    with pytest.raises(NotFound, match="tenant 'globex' has no connection 'acme-hs'"):
        save(store, settings, "globex", "acme-hs", "users", Change(set_fields={"email": "{{ email }}"}))
    assert stored(store) == []


def test_yaml_layers_of_tenant_and_connection_are_checked_against_the_schema_when_loaded(
    store: Engine, settings: Settings
) -> None:
    with_schema(settings)
    folder = settings.mapping_overrides / "acme" / "acme-hs"
    folder.mkdir(parents=True)
    (folder / "users.yaml").write_text('fields:\n  crmId: "{{ raw.id }}"\n  nickname: "{{ first_name }}"\n')
    with pytest.raises(SchemaMismatch, match=r"tenant 'acme': field 'nickname' \(from .*acme-hs/users\.yaml\)"):
        build_mapper(store, settings, connection(store, "acme-hs"), "users")
    mapper = build_mapper(store, settings, connection(store, "acme-hs2"), "users")
    assert "nickname" not in mapper.app_mapping.templates
