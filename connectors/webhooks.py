"""Webhooks as connectors see them: the raw request, the events it announces, and the reply to a handshake.

Each app verifies its own signature scheme in its hooks (`verify_webhook`) on the **raw bytes**, with a
constant-time comparison (`hmac.compare_digest`, or `signatures_match` here), and raises
`WebhookRejected` for a missing, forged or stale signature.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Literal

import httpx

__all__ = ["WebhookEvent", "WebhookReply", "WebhookRequest", "signatures_match"]


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook call exactly as received: `url` is the full URL the app called, `body` the raw bytes."""

    method: str
    url: str
    headers: httpx.Headers
    body: bytes


@dataclass(frozen=True)
class WebhookEvent:
    """One record change a webhook announces; the payload is a hint, the record is fetched by id."""

    kind: Literal["upsert", "deleted"]
    external_id: str
    occurred_at: str | None = None
    event_id: str | None = None
    changed_by: str | None = None  # the app's "modified by" marker (HubSpot sourceId, Pipedrive meta.user_id)


@dataclass(frozen=True)
class WebhookReply:
    """What to answer a subscription handshake with."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def signatures_match(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time equality of two signatures."""
    left = expected.encode() if isinstance(expected, str) else expected
    right = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(left, right)
