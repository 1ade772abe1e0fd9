"""The `contacts` universal data model: a person in an address book or CRM, with where to reach them."""

from __future__ import annotations

from pydantic import Field

from mappings.udm.person import Person

__all__ = ["Contact"]


class Contact(Person):
    """A contact known to an external app (a CRM contact, an address-book entry)."""

    mobile: str | None = None
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None
    tags: list[str] = Field(default_factory=list)
