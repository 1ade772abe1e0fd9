"""Zendesk webhooks: a signature over the timestamp and the raw body, and one event per call in Zendesk's
event envelope. YAML has neither signature schemes nor payload parsing, so both live here.

    X-Zendesk-Webhook-Signature:           base64(HMAC-SHA256(signing secret, timestamp + raw body))
    X-Zendesk-Webhook-Signature-Timestamp: 2024-05-01T12:00:03Z
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.errors import WebhookRejected
from connectors.webhooks import WebhookEvent, WebhookRequest, signatures_match

__all__ = ["REPLAY_WINDOW_SECONDS", "check_signature", "parse_webhook", "sign", "verify_webhook"]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
REPLAY_WINDOW_SECONDS = 300.0  # Zendesk specifies no tolerance; a local replay guard, either side of now
_USER_EVENT = "zen:event-type:user."


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature Zendesk sends: the signing secret string is the key, as it is (not base64-decoded)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_webhook(request: WebhookRequest, secret: str, now: float) -> None:
    """Raise WebhookRejected unless the call is signed with `secret` within REPLAY_WINDOW_SECONDS of `now`.

    A hook because YAML cannot express a signature scheme.
    """
    check_signature(request, secret, now, window=REPLAY_WINDOW_SECONDS)


def check_signature(request: WebhookRequest, secret: str, now: float, *, window: float) -> None:
    """`verify_webhook` with an explicit replay window in seconds."""
    signature = request.headers.get(SIGNATURE_HEADER, "").strip()
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if not signature or not timestamp:
        raise WebhookRejected(f"zendesk: the webhook lacks {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}; not from Zendesk")
    if not signatures_match(sign(secret, timestamp, request.body), signature):
        raise WebhookRejected("zendesk: the webhook signature does not match; check the webhook's signing secret")
    sent = _epoch(timestamp)
    if sent is None:
        raise WebhookRejected(f"zendesk: the webhook timestamp {timestamp!r} is not an ISO-8601 time")
    if abs(now - sent) > window:
        raise WebhookRejected(
            f"zendesk: the webhook was signed at {timestamp}, more than {window:g}s from now; refused as a replay"
        )


def parse_webhook(request: WebhookRequest) -> list[WebhookEvent]:
    """The user change an event announces: `user.deleted`, or `user.active_changed` to false, is a deletion;
    other `user.*` events are upserts; other events (tickets, organizations) announce no user change.

    A hook because the event envelope (`type`, `subject`, `detail`, `event`) is not a list of records.
    """
    try:
        body: Any = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        logger.warning("zendesk: a verified webhook whose body is not JSON; ignored")
        return []
    kind = str(body.get("type", "")) if isinstance(body, dict) else ""
    if not kind.startswith(_USER_EVENT):
        return []
    detail, event = _object(body.get("detail")), _object(body.get("event"))
    external_id = str(detail.get("id") or str(body.get("subject", "")).rpartition(":")[2])
    if not external_id:
        return []
    name = kind.removeprefix(_USER_EVENT)
    deleted = name == "deleted" or (name == "active_changed" and event.get("current") is False)
    return [
        WebhookEvent(
            kind="deleted" if deleted else "upsert",
            external_id=external_id,
            occurred_at=body.get("time"),
            event_id=_event_id(body.get("id")),
        )
    ]


def _event_id(value: Any) -> str | None:
    """Zendesk's event id, the replay identity of the event; None when absent (the body's hash stands in)."""
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _epoch(timestamp: str) -> float | None:
    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
