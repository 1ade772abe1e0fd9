"""Webhook deliveries as the apps send them, signed, for tests that drive the receiver over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import Sequence
from typing import Literal

import orjson

__all__ = ["HubSpotChange", "hubspot_delivery"]

HubSpotChange = tuple[Literal["creation", "propertyChange", "deletion"], str]
_event_ids = itertools.count(1)


def hubspot_delivery(
    url: str, secret: str, changes: Sequence[HubSpotChange], portal_id: int = 1
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one HubSpot v3 delivery to `url`: a JSON array of contact events, signed with
    base64 HMAC-SHA256 of method + URI + body + timestamp (ms)."""
    now_ms = int(time.time() * 1000)
    events = [
        {
            "eventId": next(_event_ids),
            "subscriptionType": f"contact.{kind}",
            "objectId": int(object_id),
            "portalId": portal_id,
            "occurredAt": now_ms,
            "attemptNumber": 0,
        }
        for kind, object_id in changes
    ]
    body = orjson.dumps(events)
    stamp = str(now_ms)
    digest = hmac.new(secret.encode(), b"POST" + url.encode() + body + stamp.encode(), hashlib.sha256).digest()
    headers = {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    return body, headers
