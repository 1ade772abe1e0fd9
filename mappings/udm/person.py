"""What the `users` and `contacts` universal data models share: a person, named and reachable."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mappings.filters import first_name, last_name

__all__ = ["Person", "complete_names"]


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
        names = {"full_name": self.full_name, "first_name": self.first_name, "last_name": self.last_name}
        complete_names(names)
        for name, value in names.items():
            if value != getattr(self, name):
                setattr(self, name, value)
        return self


def complete_names(values: MutableMapping[str, Any]) -> None:
    """Fill in `full_name` from its parts, or the parts from it (a validated person's fields, in place)."""
    full, first, last = values["full_name"], values["first_name"], values["last_name"]
    if full is None and (first or last):
        values["full_name"] = " ".join(p for p in (first, last) if p)
    elif full and first is None and last is None:
        values["first_name"], values["last_name"] = first_name(full), last_name(full)
