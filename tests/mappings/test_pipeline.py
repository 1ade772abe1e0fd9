"""RecordMapper: a raw HubSpot contact, through the connector's udm_fields and the UDM, to the app record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mappings import RecordError, RecordMapper, TemplateError, compile_mapping, effective_mapping
from tests.mappings.conftest import Contact


def mapper(udm_fields: dict[str, str], app_fields: dict[str, str] | None = None) -> RecordMapper:
    app_mapping = compile_mapping(app_fields, origin="app.yaml") if app_fields else effective_mapping("users")
    return RecordMapper(data_source="users", udm_fields=udm_fields, app_mapping=app_mapping, origin="hubspot")


def test_raw_hubspot_contact_maps_to_the_app_record(hubspot_udm_fields: dict[str, str], contact: Contact) -> None:
    assert mapper(hubspot_udm_fields).map(contact()) == {
        "email": "ada@example.org",
        "fullName": "Ada Lovelace",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": None,
        "company": "Analytical Engines",
        "title": "Countess",
        "active": True,
        "sourceUpdatedAt": datetime(2026, 11, 24, 17, 24, 49, 524000, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("first", "last", "full"),
    [("Ada", None, "Ada"), (None, "Lovelace", "Lovelace"), (None, None, None), ("", "", None)],
)
def test_full_name_joins_the_parts_there_are(
    hubspot_udm_fields: dict[str, str], contact: Contact, first: str | None, last: str | None, full: str | None
) -> None:
    record = mapper(hubspot_udm_fields).map(contact(firstname=first, lastname=last))
    assert record["fullName"] == full


def test_archived_contact_is_inactive(hubspot_udm_fields: dict[str, str], contact: Contact) -> None:
    assert mapper(hubspot_udm_fields).map(contact(archived=True))["active"] is False


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "   "}, "id"),
        ({"id": None}, "id"),
        ({"updatedAt": "last tuesday"}, "updated_at"),
    ],
)
def test_raw_record_failing_the_udm_is_a_record_error(
    hubspot_udm_fields: dict[str, str], contact: Contact, raw: dict[str, Any], field: str
) -> None:
    with pytest.raises(RecordError, match=f"UDM field '{field}'") as caught:
        mapper(hubspot_udm_fields).map(contact(**raw))
    assert caught.value.field == field


@pytest.mark.parametrize("drop", ["id", "properties", "updatedAt"])
def test_raw_record_missing_a_mapped_field_is_a_record_error(
    hubspot_udm_fields: dict[str, str], contact: Contact, drop: str
) -> None:
    raw = contact()
    del raw[drop]
    with pytest.raises(RecordError, match="is undefined"):
        mapper(hubspot_udm_fields).map(raw)


def test_udm_fields_naming_a_non_udm_field_fail_at_construction(hubspot_udm_fields: dict[str, str]) -> None:
    with pytest.raises(
        TemplateError, match=r"hubspot: udm_fields \['mobile', 'nickname'\] are not fields of the users"
    ):
        mapper({**hubspot_udm_fields, "nickname": "{{ raw.properties.nick }}", "mobile": "{{ raw.m }}"})


def test_bad_udm_expression_fails_at_construction(hubspot_udm_fields: dict[str, str]) -> None:
    with pytest.raises(TemplateError, match="line 1") as caught:
        mapper({**hubspot_udm_fields, "email": "{{ raw.properties.email | }}"})
    assert (caught.value.origin, caught.value.field) == ("hubspot udm_fields", "email")


def test_unknown_data_source_fails_at_construction() -> None:
    with pytest.raises(TemplateError, match="unknown data source 'deals'"):
        RecordMapper(data_source="deals", udm_fields={}, app_mapping=compile_mapping({}, origin="x"), origin="x")


def test_raw_fields_are_readable_in_the_app_mapping(hubspot_udm_fields: dict[str, str], contact: Contact) -> None:
    app = {
        "crmId": "{{ raw.id }}",
        "hubspotObjectId": "{{ raw.properties.hs_object_id }}",
        "email": "{{ email | upper }}",
        "label": "{{ company }} / {{ raw.properties.jobtitle }}",
    }
    assert mapper(hubspot_udm_fields, app).map(contact()) == {
        "crmId": "1001",
        "hubspotObjectId": "1001",
        "email": "ADA@EXAMPLE.ORG",
        "label": "Analytical Engines / Countess",
    }


def test_udm_values_are_typed_before_the_app_mapping(contact: Contact) -> None:
    udm_fields = {"id": "{{ raw.number }}", "active": "{{ raw.flag }}", "email": "{{ raw.properties.email }}"}
    raw = contact() | {"number": 1001, "flag": "yes"}
    record = mapper(udm_fields, {"id": "{{ id }}", "active": "{{ active }}"}).map(raw)
    assert record == {"id": "1001", "active": True}


def test_app_mapping_failure_names_the_app_field(hubspot_udm_fields: dict[str, str], contact: Contact) -> None:
    with pytest.raises(RecordError, match="field 'region'") as caught:
        mapper(hubspot_udm_fields, {"region": "{{ raw.properties.region }}"}).map(contact())
    assert caught.value.field == "region"
