"""The UDM's fields validated into a dict (the import's path) give what the UDM's model gives, value or error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, model_validator

from mappings.udm import UDMS, Contact, User
from mappings.udm.fields import fields_validator


def _by_model(model: type[BaseModel], fields: dict[str, Any]) -> dict[str, Any] | list[tuple[Any, str]]:
    try:
        return model.model_validate(fields).__dict__
    except ValidationError as exc:
        return [(e["loc"], e["msg"]) for e in exc.errors()]


def _by_dict(model: type[BaseModel], fields: dict[str, Any]) -> dict[str, Any] | list[tuple[Any, str]]:
    try:
        return fields_validator(model)(fields)
    except ValidationError as exc:
        return [(e["loc"], e["msg"]) for e in exc.errors()]


CASES: list[dict[str, Any]] = [
    {"id": 7, "email": " ada@example.org ", "full_name": "Ada King Lovelace"},
    {"id": "1", "first_name": "Ada", "last_name": "Lovelace"},
    {"id": "1", "first_name": "", "last_name": "Lovelace", "full_name": None},
    {"id": "1", "full_name": "  ", "created_at": 1796671494360, "updated_at": "2026-11-24T17:24:49.524Z"},
    {"id": "1", "full_name": "Ada", "first_name": "A", "last_name": None, "active": "true"},
    {"id": "", "email": 5},
    {"id": None},
    {"email": "x@example.org"},
    {"id": "1", "unknown": "field"},
    {"id": "1", "updated_at": "not a date", "active": "perhaps"},
    {"id": "1", "phone": 3.5, "company": ["a list"]},
]


@pytest.mark.parametrize("model", [User, Contact])
@pytest.mark.parametrize("fields", CASES)
def test_the_dict_path_validates_as_the_model_does(model: type[BaseModel], fields: dict[str, Any]) -> None:
    assert _by_dict(model, fields) == _by_model(model, fields)


def test_a_default_factory_gives_each_record_its_own_value() -> None:
    validate = fields_validator(Contact)
    first, second = validate({"id": "1"}), validate({"id": "2"})
    assert first["tags"] == [] and first["tags"] is not second["tags"]


_values = st.one_of(
    st.none(), st.text(max_size=12), st.integers(), st.floats(allow_nan=False), st.booleans(), st.just(" Ada  King ")
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*User.model_fields, "extra"]), _values))
def test_any_fields_validate_alike(fields: dict[str, Any]) -> None:
    for model in UDMS.values():
        assert _by_dict(model, fields) == _by_model(model, fields)


def test_a_udm_with_validators_it_does_not_know_goes_through_its_model() -> None:
    class Checked(User):
        @model_validator(mode="after")
        def _no_example_org(self) -> Checked:
            if self.email and self.email.endswith("@example.org"):
                raise ValueError("no example.org")
            return self

    assert _by_dict(Checked, {"id": "1", "email": "a@example.org"}) == _by_model(
        Checked, {"id": "1", "email": "a@example.org"}
    )
    assert fields_validator(Checked)({"id": "1", "full_name": "Ada Lovelace"})["last_name"] == "Lovelace"
