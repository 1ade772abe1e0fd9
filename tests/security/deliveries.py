"""Webhook deliveries signed as each app signs them, for the replay, concurrency and fuzzing tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "Delivery",
    "graph",
    "hubspot_events",
    "hubspot_v1",
    "hubspot_v3",
    "pipedrive",
    "zendesk",
]


@dataclass(frozen=True)
class Delivery:
    """One webhook call: where it goes, its raw body and its headers (the app's signature among them)."""

    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...]

    def with_headers(self, *extra: tuple[str, str]) -> Delivery:
        return replace(self, headers=(*self.headers, *extra))

    def reordered(self) -> Delivery:
        """The same headers in reverse order, their names in another case."""
        return replace(self, headers=tuple((k.upper(), v) for k, v in reversed(self.headers)))


def hubspot_events(*changes: tuple[str, int], first_event: int = 100, portal: int = 62515) -> bytes:
    """A HubSpot body: one contact event per (subscription type, contact id)."""
    return orjson.dumps(
        [
            {"eventId": first_event + n, "subscriptionType": f"contact.{kind}", "portalId": portal,
             "objectId": contact, "occurredAt": 1_700_000_000_000 + n}
            for n, (kind, contact) in enumerate(changes)
        ]
    )  # fmt: skip


def hubspot_v3(base: str, path: str, secret: str, body: bytes, at: float) -> Delivery:
    """v3: base64 HMAC-SHA256 of method + full URL + body + timestamp in ms."""
    stamp = str(int(at * 1000))
    message = b"POST" + (base + path).encode() + body + stamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    headers = (("X-HubSpot-Signature-v3", signature), ("X-HubSpot-Request-Timestamp", stamp))
    return Delivery(path, body, (("Content-Type", "application/json"), *headers))


def hubspot_v1(path: str, secret: str, body: bytes) -> Delivery:
    """v1: hex SHA-256 of secret + body, no timestamp: it never expires."""
    signature = hashlib.sha256(secret.encode() + body).hexdigest()
    headers = (("X-HubSpot-Signature", signature), ("X-HubSpot-Signature-Version", "v1"))
    return Delivery(path, body, (("Content-Type", "application/json"), *headers))


def zendesk(path: str, secret: str, event_id: str, user_id: int, at: float, kind: str = "deleted") -> Delivery:
    """base64 HMAC-SHA256 of the ISO timestamp + body, with the timestamp in its own header."""
    body = orjson.dumps(
        {"id": event_id, "type": f"zen:event-type:user.{kind}", "subject": f"zen:user:{user_id}",
         "time": "2024-05-01T12:00:00Z", "detail": {"id": str(user_id)}, "event": {}}
    )  # fmt: skip
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()
    headers = (("X-Zendesk-Webhook-Signature", signature), ("X-Zendesk-Webhook-Signature-Timestamp", stamp))
    return Delivery(path, body, (("Content-Type", "application/json"), *headers))


def graph(path: str, client_state: str, users: Sequence[str], change: str = "deleted") -> Delivery:
    """A basic change notification: no signature, no timestamp, no id; the clientState is the only proof."""
    body = orjson.dumps(
        {"value": [{"subscriptionId": "e3b1c5d7", "changeType": change, "resource": f"Users/{u}",
                    "resourceData": {"id": u}, "clientState": client_state, "tenantId": "t"} for u in users]}
    )  # fmt: skip
    return Delivery(path, body, (("Content-Type", "application/json"),))


def pipedrive(path: str, user_password: str, meta: dict[str, Any]) -> Delivery:
    """v2: HTTP Basic credentials and a `meta` naming the event; nothing signs the body."""
    body = orjson.dumps({"meta": {"entity": "person", "version": "2.0", **meta}, "data": {}})
    auth = "Basic " + base64.b64encode(user_password.encode()).decode()
    return Delivery(path, body, (("Content-Type", "application/json"), ("Authorization", auth)))
