"""The reverse mapping (app record -> UDM -> external fields) and the conflict policy."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.registry import load
from inlet.push import ConflictPolicy, ReverseMapper, build_reverse, inverse_fields, nested_body, resolve
from mappings import Layer, RecordError, TemplateError

_APP_FIELDS = frozenset({"email", "fullName", "firstName", "lastName", "phone", "company", "title"})


def _json_server(**stored: Layer) -> ReverseMapper:
    spec, _ = load("json_server")
    return build_reverse(
        "users",
        "json_server",
        spec.collections["users"].udm_fields,
        writable=frozenset(spec.collections["users"].writes.fields),  # type: ignore[union-attr]  # it has writes
        app_fields=_APP_FIELDS,
        tenant="acme",
        stored=stored or None,  # type: ignore[arg-type]  # keys are the stored levels
    )


def test_plain_udm_fields_invert_to_writable_external_fields() -> None:
    spec, _ = load("json_server")
    plain = {"email": "{{ email }}", "name": "{{ full_name }}", "phone": "{{ phone }}", "title": "{{ title }}"}
    assert inverse_fields(spec.collections["users"].udm_fields) == plain  # company is an expression: no inverse


def test_an_app_record_becomes_the_external_fields_and_unwritable_fields_are_dropped_with_a_notice() -> None:
    mapper = _json_server()
    out = mapper.reverse({"email": "ada@x.org", "fullName": "Ada Lovelace", "phone": "+44 1", "company": "Acme"})
    assert out.fields == {"email": "ada@x.org", "name": "Ada Lovelace", "phone": "+44 1"}
    assert out.notices == ["field 'company': json_server cannot write it; dropped"]


def test_a_tenant_layer_overrides_the_default_field_by_field() -> None:
    layer = Layer(origin="store: tenant acme", fields={"full_name": "{{ fullName | upper }}"})
    out = _json_server(tenant=layer).reverse({"email": "a@x.org", "fullName": "Ada"})
    assert out.fields["name"] == "ADA"


def test_a_bad_tenant_expression_fails_when_loaded_naming_the_field() -> None:
    with pytest.raises(TemplateError, match="full_name"):
        _json_server(tenant=Layer(origin="store: tenant acme", fields={"full_name": "{{ fullName | nope }}"}))


def test_a_record_the_udm_refuses_is_a_record_error() -> None:
    layer = Layer(origin="store: tenant acme", fields={"email": "{{ record }}"})
    with pytest.raises(RecordError):
        _json_server(tenant=layer).reverse({"email": "a@x.org"})


@pytest.mark.parametrize(
    ("policy", "app_at", "winner"),
    [
        (ConflictPolicy("last_writer"), "2026-12-07T05:00:02Z", "app"),
        (ConflictPolicy("last_writer"), "2026-12-07T04:59:00Z", "external"),
        (ConflictPolicy("external"), "2026-12-07T05:00:02Z", "external"),
        (ConflictPolicy("last_writer", {"email": "app"}), "2026-12-07T04:59:00Z", "app"),
    ],
)
def test_a_field_both_sides_changed_goes_to_its_owner_or_the_later_writer(
    policy: ConflictPolicy, app_at: str, winner: str
) -> None:
    reversed_ = _json_server().reverse({"email": "app@x.org", "fullName": "Same Name"})
    current = {"id": 1, "email": "ext@x.org", "name": "Same Name"}
    fields, conflicts = resolve(
        reversed_, current, "2026-12-07T05:00:00Z", app_at, policy, app_id="u1", external_id="1"
    )
    assert [(c.field, c.winner) for c in conflicts] == [("email", winner)]
    assert fields == ({"email": "app@x.org"} if winner == "app" else {})


def test_the_catalogue_shows_which_fields_a_push_can_write() -> None:
    from inlet.service import connector_info

    hubspot = connector_info("hubspot")
    assert {"create", "update", "delete"} <= set(hubspot.supports)
    assert hubspot.writable_fields["email"] == "email" and hubspot.writable_fields["active"] is None
    # Expressions (Google's primary-item filters) have no inverse: writes.paths places them, at the primary item.
    google = connector_info("google_people")
    assert google.writable_fields["email"] == "emailAddresses.primary.value"


def test_a_list_field_is_written_at_its_primary_item_keeping_the_others() -> None:
    current: dict[str, list[dict[str, Any]]] = {
        "emailAddresses": [
            {"value": "home@x.org", "type": "home"},
            {"value": "work@x.org", "type": "work", "metadata": {"primary": True}},
        ],
        "names": [{"givenName": "Ada", "familyName": "Lovelace", "metadata": {"primary": True}}],
    }
    body = nested_body({"emailAddresses.primary.value": "new@x.org", "names.primary.familyName": "King"}, current)
    assert body["emailAddresses"] == [
        {"value": "home@x.org", "type": "home"},
        {"value": "new@x.org", "type": "work", "metadata": {"primary": True}},
    ]
    assert body["names"] == [{"givenName": "Ada", "familyName": "King", "metadata": {"primary": True}}]
    assert nested_body({"emailAddresses.primary.value": "a@x.org"}) == {"emailAddresses": [{"value": "a@x.org"}]}
    assert current["emailAddresses"][1]["value"] == "work@x.org"  # the record read is left as it was


def test_a_graph_update_changes_the_first_address_and_keeps_the_others() -> None:
    """Graph marks no item primary and a PATCH replaces the whole list: the other addresses and phones go along."""
    current = {
        "emailAddresses": [{"address": "ada@x.org", "name": "Ada"}, {"address": "ada@home.org", "name": "Ada"}],
        "businessPhones": ["+1 555 0100", "+1 555 0101"],
    }
    from connectors.registry import load

    spec, _ = load("msgraph")
    writes = spec.collections["contacts"].writes
    assert writes is not None
    paths = writes.paths
    body = nested_body({paths["email"]: "ada@new.org", paths["phone"]: "+1 555 0199"}, current)
    assert body == {
        "emailAddresses": [{"address": "ada@new.org", "name": "Ada"}, {"address": "ada@home.org", "name": "Ada"}],
        "businessPhones": ["+1 555 0199", "+1 555 0101"],
    }
