"""What the `users` and `contacts` universal data models share: a person, named and reachable."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mappings.filters import first_name, last_name

__all__ = ["Person"]


class Person(BaseModel):
    """A person known to an external app; each data source's UDM adds its own fields."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, description="the record's id in the external app")
    email: str | None = None
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _derive_names(self) -> Self:
        """Apps give a full name or its parts; the UDM always carries both where it can."""
        if self.full_name is None and (self.first_name or self.last_name):
            self.full_name = " ".join(p for p in (self.first_name, self.last_name) if p)
        elif self.full_name and self.first_name is None and self.last_name is None:
            self.first_name, self.last_name = first_name(self.full_name), last_name(self.full_name)
        return self
