"""What the team's app pushes: one tenant's record changes for one data source, to one connection or to every
connection of the tenant for that data source. Every field is checked before anything is kept.

    {"tenant": "acme", "connection": "acme-hubspot",          # or null: every connection for the data source
     "data_source": "users",
     "changes": [{"app_id": "u-42", "type": "updated",
                  "record": {"email": "ada@example.org", "fullName": "Ada Lovelace"},
                  "change_id": "c-981",                      # optional: the app's id of this change
                  "occurred_at": "2026-12-07T05:00:00Z",     # optional: when the app changed it
                  "external_id": "1001"}]}                   # optional: the id inlet delivered it with
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["MAX_CHANGES", "PushRequest", "PushedChange", "change_id"]

MAX_CHANGES = 1000
_Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class PushedChange(BaseModel):
    """One change of one record in the team's app."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_id: _Id = Field(description="the record's id in the team's app")
    type: Literal["created", "updated", "deleted"]
    record: dict[str, Any] | None = Field(None, description="the app record; required unless deleted")
    change_id: _Id | None = Field(None, description="the app's id of this change; a resend with it is dropped")
    occurred_at: str | None = Field(None, max_length=64, description="when the app changed it, ISO 8601")
    external_id: _Id | None = Field(None, description="the external id inlet delivered this record with")

    @field_validator("occurred_at")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"occurred_at must be ISO 8601, got {value[:40]!r}") from None
        return value

    @model_validator(mode="after")
    def _record_unless_deleted(self) -> PushedChange:
        if self.type != "deleted" and not self.record:
            raise ValueError(f"a {self.type} change needs its record")
        if self.type == "deleted" and self.record is not None:
            raise ValueError("a deleted change carries no record")
        return self


class PushRequest(BaseModel):
    """A batch of record changes from the team's app, for one tenant and data source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)
    connection: _Id | None = Field(None, description="null: every connection of the tenant for the data source")
    data_source: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    changes: list[PushedChange] = Field(min_length=1, max_length=MAX_CHANGES)


def change_id(change: PushedChange, message_id: str | None, index: int) -> str:
    """The app's change id, else one derived from the signed message id (a resent message is the same
    change), else from the change's content (an identical resend is the same change)."""
    if change.change_id:
        return change.change_id
    if message_id:
        return f"{message_id}#{index}"
    content = orjson.dumps(
        [change.type, change.record, change.occurred_at, change.external_id], option=orjson.OPT_SORT_KEYS
    )
    return "sha:" + hashlib.sha256(content).hexdigest()[:32]
