"""What Microsoft Graph's YAML cannot say: a 410 from the delta query also means "resync", and change
notifications, which carry no signature but echo the subscription's `clientState`, start with a
`validationToken` handshake and batch several notifications in one `value` array.

    POST /notify?validationToken=Validation%3A+Testing...  ->  200 text/plain, the decoded token
    POST /notify  {"value": [{"changeType": "updated", "clientState": "...", "resourceData": {"id": "..."}}]}
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import httpx
import orjson

from connectors.errors import WebhookRejected
from connectors.webhooks import WebhookEvent, WebhookReply, WebhookRequest, signatures_match

__all__ = ["LIFECYCLE_EVENTS", "parse_webhook", "verify_webhook", "webhook_handshake", "webhook_lifecycle"]

logger = logging.getLogger(__name__)

LIFECYCLE_EVENTS = frozenset({"missed", "reauthorizationRequired", "subscriptionRemoved"})
_KINDS: dict[str, Literal["upsert", "deleted"]] = {"created": "upsert", "updated": "upsert", "deleted": "deleted"}


def webhook_handshake(request: WebhookRequest) -> WebhookReply | None:
    """Graph validates a notification URL by POSTing `?validationToken=<url-encoded>`; the answer must be
    200 text/plain with the decoded token within 10 s. None for every other call. YAML has no handshakes."""
    token = httpx.URL(request.url).params.get("validationToken")
    if token is None or request.method.upper() != "POST":
        return None
    return WebhookReply(200, token.encode(), {"Content-Type": "text/plain; charset=utf-8"})


def verify_webhook(request: WebhookRequest, secret: str, now: float) -> None:
    """Every notification in the batch must echo `secret` as its clientState (compared in constant time).

    Basic notifications are not signed and carry no timestamp, so `now` cannot reject replays; the
    clientState, known only to Graph and us, is what tells a forged post. YAML cannot walk the batch.
    """
    notifications = _notifications(request)
    if not notifications:
        raise WebhookRejected("msgraph: the notification carries no `value` to verify", connector="msgraph")
    for notification in notifications:
        state = notification.get("clientState")
        if not isinstance(state, str) or not signatures_match(secret, state):
            raise WebhookRejected(
                "msgraph: a notification's clientState is missing or does not match the subscription's; "
                "check the connection's webhook secret",
                connector="msgraph",
            )


def parse_webhook(request: WebhookRequest) -> list[WebhookEvent]:
    """User changes in a verified batch: `created`/`updated` are upserts, `deleted` a deletion.

    Graph sends creations and soft deletes of users as `updated`, so an upsert's record may be gone when
    fetched (GET answers 404). Lifecycle events (`missed`, `reauthorizationRequired`) and other resources
    announce no user change and are skipped. Notifications hold ids only, no time of change.
    """
    events = []
    for notification in _notifications(request):
        if "lifecycleEvent" in notification:
            continue  # webhook_lifecycle reads them
        kind, user_id = _KINDS.get(str(notification.get("changeType"))), _user_id(notification)
        if kind is not None and user_id is not None:
            events.append(WebhookEvent(kind, user_id, None, _event_id(notification)))
    return events


def webhook_lifecycle(request: WebhookRequest) -> list[tuple[str, str]]:
    """The lifecycle notifications of a verified batch, as (lifecycleEvent, subscriptionId); unknown events are
    skipped. They arrive at the lifecycleNotificationUrl, which inlet points at the same receiver URL."""
    found = []
    for notification in _notifications(request):
        event, subscription = notification.get("lifecycleEvent"), notification.get("subscriptionId")
        if event in LIFECYCLE_EVENTS and isinstance(subscription, str) and subscription:
            found.append((str(event), subscription))
    return found


def _event_id(notification: dict[str, Any]) -> str | None:
    """The notification's id with its change type and resource, when Graph sends an id; basic notifications
    often carry none, and then the receiver knows a replay by the body's hash."""
    value = notification.get("id")
    if not isinstance(value, str) or not value:
        return None
    return f"{value}:{notification.get('changeType')}:{notification.get('resource')}"


def _notifications(request: WebhookRequest) -> list[dict[str, Any]]:
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise WebhookRejected("msgraph: the notification body is not JSON", connector="msgraph") from None
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, list):
        raise WebhookRejected("msgraph: the notification body has no `value` array", connector="msgraph")
    return [n for n in value if isinstance(n, dict)]


def _user_id(notification: dict[str, Any]) -> str | None:
    """`resourceData.id` of a user notification (`resource` is `Users/<id>`); None for other resources."""
    resource = str(notification.get("resource", ""))
    data = notification.get("resourceData")
    if not resource.lower().startswith("users/"):
        return None
    if isinstance(data, dict) and data.get("id"):
        return str(data["id"])
    return resource.partition("/")[2] or None


def _error_code(response: httpx.Response) -> str:
    try:
        return str(orjson.loads(response.content)["error"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "no error code"
