"""The `users` universal data model: what every app's user or contact record becomes before mapping."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["User"]


class User(BaseModel):
    """A person known to an external app (a user, a contact)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, description="the record's id in the external app")
    email: str | None = None
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    active: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
