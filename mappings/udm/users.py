"""The `users` universal data model: what every app's user or contact record becomes before mapping."""

from __future__ import annotations

from mappings.udm.person import Person

__all__ = ["User"]


class User(Person):
    """A person known to an external app (a user, a contact)."""

    active: bool | None = None
