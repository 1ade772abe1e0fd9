"""Universal data models, by data source name."""

from pydantic import BaseModel

from mappings.udm.contacts import Contact
from mappings.udm.users import User

__all__ = ["UDMS", "Contact", "User"]

UDMS: dict[str, type[BaseModel]] = {"users": User, "contacts": Contact}
