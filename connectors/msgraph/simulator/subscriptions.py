"""Graph change notifications for users: subscriptions, their validation handshake, notifications and
lifecycle notifications.

    POST   /v1.0/subscriptions         changeType (updated, deleted), notificationUrl, resource (users),
                                       expirationDateTime (at most 41,760 minutes ahead), clientState (<= 128),
                                       lifecycleNotificationUrl; each URL must echo a `validationToken` first
    PATCH  /v1.0/subscriptions/{id}    renew: a new expirationDateTime
    DELETE /v1.0/subscriptions/{id}    204
    GET    /v1.0/subscriptions[/{id}]

Creations, updates, soft deletes and restores arrive as `updated`, permanent deletions as `deleted`; one
POST carries the notifications of one change for every subscription of that URL. An expired subscription is
removed, with a `subscriptionRemoved` lifecycle notification; `missed` and `reauthorizationRequired` are
sent on demand (`GraphSimulator.lifecycle`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from starlette.requests import Request

from connectors.msgraph.simulator.wire import APP_ID, TENANT_ID, root, user_id
from connectors.simulation import Outbox, Person, Refusal, SimClock

__all__ = ["LIFECYCLE_EVENTS", "MAX_MINUTES", "Subscriptions", "notification_body"]

MAX_MINUTES = 41_760  # the longest a users subscription lives
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_CHANGE_TYPES = {"created": "updated", "updated": "updated", "deleted": "updated", "restored": "updated"}
_CHANGE_TYPES["purged"] = "deleted"
_VALIDATION_FAILED = (
    "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
)


@dataclass
class Subscription:
    id: str
    resource: str
    change_type: str
    notification_url: str
    expires: float  # epoch seconds
    client_state: str | None = None
    lifecycle_url: str | None = None

    def shown(self, request: Request) -> dict[str, Any]:
        return {
            "@odata.context": f"{root(request)}/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": APP_ID,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _iso(self.expires),
            "creatorId": str(uuid.uuid5(uuid.NAMESPACE_URL, APP_ID)),
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "notificationUrlAppId": None,
        }


class Subscriptions:
    """A tenant's subscriptions to users; notifications leave through `outbox`."""

    def __init__(self, outbox: Outbox, clock: SimClock, client: Callable[[], httpx.AsyncClient]) -> None:
        self.outbox, self.clock, self._client = outbox, clock, client
        self.all: dict[str, Subscription] = {}

    async def create(self, body: Any) -> Subscription:
        """A new subscription, once its URLs passed the validation handshake; Refusal when the body is bad."""
        if not isinstance(body, dict):
            raise _invalid("The request body must be a subscription object.")
        names = ("changeType", "notificationUrl", "resource", "expirationDateTime")
        if missing := [k for k in names if not isinstance(body.get(k), str) or not body[k]]:
            raise _invalid(f"Missing or empty property: {missing[0]}.")
        spec: dict[str, str] = {k: body[k] for k in names}
        if spec["resource"].strip("/").lower() != "users":
            raise _invalid(f"Resource '{spec['resource']}' is not supported; this simulator serves 'users'.")
        kinds = [k.strip() for k in spec["changeType"].split(",")]
        if not kinds or any(k not in ("updated", "deleted") for k in kinds):
            raise _invalid("Users support changeType 'updated' and 'deleted' only.")
        state, lifecycle = body.get("clientState"), body.get("lifecycleNotificationUrl")
        if state is not None and (not isinstance(state, str) or len(state) > 128):
            raise _invalid("clientState must be a string of at most 128 characters.")
        for url in filter(None, (spec["notificationUrl"], lifecycle)):
            await self._validate(str(url))
        subscription = Subscription(
            str(uuid.uuid4()),
            "users",
            ",".join(kinds),
            spec["notificationUrl"],
            self._expiry(spec["expirationDateTime"]),
        )
        subscription.client_state, subscription.lifecycle_url = state, lifecycle
        self.all[subscription.id] = subscription
        return subscription

    def renew(self, subscription_id: str, body: Any) -> Subscription:
        subscription = self.get(subscription_id)
        when = body.get("expirationDateTime") if isinstance(body, dict) else None
        if not isinstance(when, str):
            raise _invalid("Missing or empty property: expirationDateTime.")
        subscription.expires = self._expiry(when)
        return subscription

    def delete(self, subscription_id: str) -> None:
        self.get(subscription_id)
        del self.all[subscription_id]
        self.outbox.drop(subscription_id)

    def get(self, subscription_id: str) -> Subscription:
        self.sweep()
        if subscription_id not in self.all:
            raise Refusal(404, "ResourceNotFound", "The object was not found.")
        return self.all[subscription_id]

    def sweep(self) -> None:
        """Remove expired subscriptions, telling each lifecycle URL `subscriptionRemoved`."""
        now = self.clock.time()
        for subscription in [s for s in self.all.values() if s.expires <= now]:
            self.lifecycle("subscriptionRemoved", subscription)
            del self.all[subscription.id]

    def notify(self, kind: str, people: Sequence[Person]) -> None:
        """Queue the notifications of one change: one POST per notification URL."""
        self.sweep()
        change_type = _CHANGE_TYPES.get(kind)
        by_url: dict[str, list[dict[str, Any]]] = {}
        for subscription in self.all.values():
            if change_type in subscription.change_type.split(","):
                for person in people:
                    by_url.setdefault(subscription.notification_url, []).append(
                        _notification(subscription, user_id(person.seq), str(change_type))
                    )
        for url, value in by_url.items():
            self._queue(str(value[0]["subscriptionId"]), url, orjson.dumps({"value": value}))

    def lifecycle(self, event: str, subscription: Subscription) -> None:
        """Queue a lifecycle notification (`missed`, `reauthorizationRequired`, `subscriptionRemoved`)."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"lifecycle events are {', '.join(LIFECYCLE_EVENTS)}")
        if subscription.lifecycle_url is None:
            return
        notice = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _iso(subscription.expires),
            "tenantId": TENANT_ID,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        self._queue(f"lifecycle:{subscription.id}", subscription.lifecycle_url, orjson.dumps({"value": [notice]}))

    def _queue(self, target: str, url: str, body: bytes) -> None:
        self.outbox.queue(target, url, lambda attempt: (_headers(), body))

    async def _validate(self, url: str) -> None:
        """The handshake: POST `?validationToken=`; the answer must be 200 text/plain with the token, within 10 s."""
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        async with self._client() as client:
            try:
                answer = await client.post(url, params={"validationToken": token}, headers=headers, timeout=10.0)
            except httpx.HTTPError:
                raise Refusal(400, "ValidationError", _VALIDATION_FAILED) from None
        plain = answer.headers.get("content-type", "").startswith("text/plain")
        if answer.status_code != 200 or not plain or answer.text != token:
            raise Refusal(400, "ValidationError", _VALIDATION_FAILED)

    def _expiry(self, text: str) -> float:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(f"expirationDateTime '{text}' is not an ISO-8601 time.") from None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        now = self.clock.time()
        if seconds <= now:
            raise _invalid("Subscription expiration must be in the future.")
        if seconds - now > MAX_MINUTES * 60:
            raise _invalid(f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.")
        return seconds


def notification_body(ids: Sequence[str], change_type: str, client_state: str) -> bytes:
    """A notification POST for these users, outside any subscription (for tests of receivers)."""
    subscription = Subscription(str(uuid.uuid5(uuid.NAMESPACE_URL, f"subscription-{client_state}")), "users", "", "", 0)
    subscription.client_state = client_state
    value = [_notification(subscription, user, change_type, "2024-05-28T12:00:00+00:00") for user in ids]
    return orjson.dumps({"value": value})


def _notification(
    subscription: Subscription, user: str, change_type: str, expires: str | None = None
) -> dict[str, Any]:
    return {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": expires or _iso(subscription.expires),
        "changeType": change_type,
        "resource": f"Users/{user}",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.User",
            "@odata.id": f"Users/{user}",
            "id": user,
            "organizationId": TENANT_ID,
        },
        "clientState": subscription.client_state,
        "tenantId": TENANT_ID,
    }


def _headers() -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8", "client-request-id": secrets.token_hex(16)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _invalid(message: str) -> Refusal:
    return Refusal(400, "InvalidRequest", message)
