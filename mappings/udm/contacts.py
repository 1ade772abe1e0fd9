"""The `contacts` universal data model: a person in an address book or CRM, with where to reach them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mappings.filters import first_name, last_name

__all__ = ["Contact"]


class Contact(BaseModel):
    """A contact known to an external app (a CRM contact, an address-book entry)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, description="the record's id in the external app")
    email: str | None = None
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    mobile: str | None = None
    company: str | None = None
    title: str | None = None
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None
    tags: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _derive_names(self) -> Contact:
        """Apps give a full name or its parts; the UDM always carries both where it can."""
        if self.full_name is None and (self.first_name or self.last_name):
            self.full_name = " ".join(p for p in (self.first_name, self.last_name) if p)
        elif self.full_name and self.first_name is None and self.last_name is None:
            self.first_name, self.last_name = first_name(self.full_name), last_name(self.full_name)
        return self
