"""A webhook is a hint: what it says about a record is confirmed with the app before it is applied.

Anyone holding a captured delivery (or, for apps that sign nothing but a shared secret, anyone holding the
secret) can say "record 42 was deleted". The app itself is the only one that knows, so a record is read by id
before its change is applied, and a deletion stands only when the app agrees.
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.base import Connector
from connectors.paths import MISSING, lookup
from connectors.spec import DeletedRule

__all__ = ["confirm_hint", "marked_deleted"]

logger = logging.getLogger(__name__)


async def confirm_hint(connector: Connector, collection: str, kind: str, external_id: str) -> dict[str, Any] | None:
    """The record as the app has it now, or None when the app no longer has it.

    An upsert hint reads the record (None: deleted since). A deletion hint stands when the app answers the
    collection's `get.not_found` (404 and 410 by default), when the record matches the collection's `deleted`
    rule (Zendesk keeps a deleted user with `active: false`), or when the answer is about another record (HubSpot
    answers a merged contact's id with the contact it went into). A record the app still has is an update.
    """
    record = await connector.get(collection, external_id)
    if kind != "deleted" or record is None:
        return record
    changes = connector.collection(collection).changes
    if marked_deleted(changes.deleted if changes else None, record):
        return None
    if connector.record_id(collection, record) != external_id:
        return None
    logger.warning(
        "%s: a webhook said %s %s was deleted, but the app still has it; applied as an update",
        connector.name,
        collection,
        external_id,
    )
    return record


def marked_deleted(rule: DeletedRule | None, record: dict[str, Any]) -> bool:
    """Whether a record the app returned is a deleted one by the collection's `deleted` rule."""
    if rule is None:
        return False
    value = lookup(record, rule.path)
    return value is not MISSING if rule.equals is None else bool(value == rule.equals)
