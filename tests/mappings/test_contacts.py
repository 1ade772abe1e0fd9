"""The `contacts` UDM: connectors that provide it, and the default contacts mapping."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.registry import available, load
from mappings import RecordMapper, effective_mapping
from tests.mappings.conftest import Contact


def contacts_mapper(app: str) -> RecordMapper:
    spec, _ = load(app)
    collection = spec.collections[spec.collection_for("contacts")]
    return RecordMapper(
        data_source="contacts",
        udm_fields=collection.fields_for("contacts"),
        app_mapping=effective_mapping("contacts", app=app),
        origin=app,
    )


def test_hubspot_contact_maps_to_the_contacts_record(contact: Contact) -> None:
    record = contacts_mapper("hubspot").map(contact(phone="+33 1 23"))
    assert record | {"sourceUpdatedAt": None} == {
        "email": "ada@example.org",
        "fullName": "Ada Lovelace",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "phone": "+33 1 23",
        "company": "Analytical Engines",
        "title": "Countess",
        "city": None,
        "country": None,
        "tags": [],
        "sourceUpdatedAt": None,
    }
    assert record["sourceUpdatedAt"].isoformat() == "2026-11-24T17:24:49.524000+00:00"


def test_google_person_maps_to_the_contacts_record_with_the_mobile_as_fallback_phone() -> None:
    primary: dict[str, Any] = {"primary": True}
    person = {
        "resourceName": "people/c1",
        "names": [{"metadata": primary, "displayName": "Grace Hopper", "givenName": "Grace", "familyName": "Hopper"}],
        "emailAddresses": [{"metadata": primary, "value": "grace@navy.mil"}],
        "phoneNumbers": [{"metadata": primary, "value": "+1 555 0100", "type": "mobile"}],
        "metadata": {"sources": [{"type": "CONTACT", "updateTime": "2026-11-24T10:00:00Z"}]},
    }
    record = contacts_mapper("google_people").map(person)
    assert (record["fullName"], record["email"], record["phone"]) == ("Grace Hopper", "grace@navy.mil", "+1 555 0100")


@pytest.mark.parametrize("app", available())
def test_every_connector_still_provides_users_and_its_udm_fields_compile(app: str) -> None:
    spec, _ = load(app)
    for udm in {"users", *(u for c in spec.collections.values() for u in c.other_udms)}:
        collection = spec.collections[spec.collection_for(udm)]
        RecordMapper(
            data_source=udm, udm_fields=collection.fields_for(udm), app_mapping=effective_mapping(udm), origin=app
        )
