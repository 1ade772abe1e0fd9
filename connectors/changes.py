"""What an incremental pull returns: changes of records since a stored token, and the next token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.base_types import PageRequest

__all__ = ["Change", "ChangePage", "ChangeSet"]


@dataclass(frozen=True)
class Change:
    """One record changed (`upsert`: created or updated; the ledger tells which) or was `deleted`.

    `record` is what the API returned with the change; some APIs send only the changed fields, so a
    consumer that needs the whole record fetches it by id.
    """

    kind: Literal["upsert", "deleted"]
    external_id: str
    record: dict[str, Any] | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class ChangePage:
    """One page of a pull; `since` is set on the last page: where the next pull starts."""

    changes: list[Change]
    next: PageRequest | None
    since: str | None = None


@dataclass
class ChangeSet:
    """A whole pull, one change per record (the latest), and the token for the next pull.

    `resynced` says the stored token had expired and this is a full enumeration instead: records it
    does not contain may have been deleted, which only a diff against what was imported can tell.
    """

    changes: list[Change] = field(default_factory=list)
    since: str | None = None
    resynced: bool = False
