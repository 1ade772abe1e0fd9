"""HubSpot's app webhooks: the subscriptions an app is configured with, and the signed batches it POSTs.

Subscriptions are configured per app (in the developer portal); the simulator takes them at
`PUT /_sim/webhooks/settings` (or `configure`):

    {"targetUrl": "https://inlet.example/webhooks/hubspot", "clientSecret": "...",
     "subscriptions": ["contact.creation", "contact.deletion", {"eventType": "contact.propertyChange",
                       "propertyName": "jobtitle"}]}

Each mutation becomes events (creation, propertyChange per changed property, deletion, restore,
privacyDeletion, merge) sent as JSON arrays of at most `batch_size` events, signed with v1 (or v2) and v3
headers; failed batches are retried up to 10 times, never after a 400/401/403/404/405.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.hubspot.simulator.wire import FIELD_OF, object_id
from connectors.simulation import Outbox, Person, RetryPolicy, SimClock, json_response

__all__ = ["EVENT_TYPES", "POLICY", "PORTAL_ID", "Webhooks", "signature_headers"]

PORTAL_ID, APP_ID = 44_556_677, 3_141_592
EVENT_TYPES = ("creation", "propertyChange", "deletion", "restore", "merge", "privacyDeletion")
POLICY = RetryPolicy(
    delays=tuple(120.0 * 2**n for n in range(10)),  # up to 10 re-sends, 2 min, 4 min, 8 min, ...
    final_statuses=frozenset({400, 401, 403, 404, 405}),
    honour_retry_after=True,
    timeout=5.0,
)
_KIND_EVENT = {"created": "creation", "deleted": "deletion", "restored": "restore", "purged": "privacyDeletion"}
_FLAGS = {"creation": "CREATED", "deletion": "DELETED"}
_ESCAPES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
            "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}  # fmt: skip
_ESCAPED = re.compile("|".join(_ESCAPES), re.IGNORECASE)


@dataclass(frozen=True)
class Subscription:
    id: int
    event_type: str  # contact.creation, contact.propertyChange, ...
    property_name: str | None = None


class Webhooks:
    """An app's webhook settings and the event batches it sends through `outbox`."""

    def __init__(self, outbox: Outbox, clock: SimClock, *, batch_size: int, duplicates: bool, shuffle: bool) -> None:
        self.outbox, self.clock = outbox, clock
        self.batch_size, self.duplicates, self.shuffle = batch_size, duplicates, shuffle
        self.target_url: str | None = None
        self.client_secret = ""
        self.signature_version = "v1"
        self.subscriptions: list[Subscription] = []
        self._ids, self._events = itertools.count(410_001), itertools.count(1001)
        self._lock = threading.Lock()

    def configure(self, target_url: str, client_secret: str, subscriptions: Sequence[Any], version: str = "v1") -> None:
        """Point the app at `target_url` with these subscriptions; ValueError for an unknown event type."""
        parsed = [_subscription(next(self._ids), raw) for raw in subscriptions]
        if version not in ("v1", "v2"):
            raise ValueError("signatureVersion must be v1 or v2")
        with self._lock:
            self.target_url, self.client_secret, self.signature_version = target_url, client_secret, version
            self.subscriptions = parsed

    def notify(self, kind: str, people: Sequence[Person]) -> None:
        """Queue the events of one mutation (`kind`, as `SimulatorBase.changed` names it)."""
        events = [e for person in people for e in self._events_of(kind, person)]
        if not events or self.target_url is None:
            return
        for start in range(0, len(events), self.batch_size):
            batch = events[start : start + self.batch_size]
            batch = [e for e in batch for _ in range(2 if self.duplicates else 1)]
            self.outbox.queue("app", self.target_url, self._render(batch[::-1] if self.shuffle else batch))

    # -- parts ---------------------------------------------------------------------------------------

    def _events_of(self, kind: str, person: Person) -> list[dict[str, Any]]:
        if kind == "updated":
            changed = [c for c in person.history if c.change == person.change]
            names = [name for name, field in FIELD_OF.items() for c in changed if c.field == field]
            pairs = [(s, name) for name in names for s in self._subscribed("propertyChange", name)]
            value = {name: getattr(person, FIELD_OF[name]) for name in names}
            return [self._event(s, person, propertyName=n, propertyValue=value[n] or "") for s, n in pairs]
        if kind == "merged":
            merged = [object_id(seq) for seq in person.merged_from]
            extra = {"primaryObjectId": object_id(person.seq), "mergedObjectIds": merged}
            return [
                self._event(s, person, **extra, newObjectId=object_id(person.seq)) for s in self._subscribed("merge")
            ]
        event_type = _KIND_EVENT.get(kind)
        return [self._event(s, person) for s in self._subscribed(event_type)] if event_type else []

    def _subscribed(self, event_type: str, property_name: str | None = None) -> list[Subscription]:
        return [
            s
            for s in self.subscriptions
            if s.event_type == f"contact.{event_type}" and s.property_name in (None, property_name)
        ]

    def _event(self, subscription: Subscription, person: Person, **extra: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "eventId": next(self._events),
            "subscriptionId": subscription.id,
            "portalId": PORTAL_ID,
            "appId": APP_ID,
            "occurredAt": person.modified_ms,
            "subscriptionType": subscription.event_type,
            "attemptNumber": 0,
            "objectId": object_id(person.seq),
            **extra,
            "changeSource": "CRM_UI" if person.modified_by is None else "INTEGRATION",
            "sourceId": "userId:7788" if person.modified_by is None else str(APP_ID),
        }
        if flag := _FLAGS.get(subscription.event_type.removeprefix("contact.")):
            event["changeFlag"] = flag
        return event

    def _render(self, events: list[dict[str, Any]]) -> Any:
        url, secret, version = self.target_url or "", self.client_secret, self.signature_version

        def render(attempt: int) -> tuple[dict[str, str], bytes]:
            body = orjson.dumps([{**e, "attemptNumber": attempt} for e in events])
            return signature_headers(url, secret, version, body, str(self.clock.now_ms())), body

        return render

    async def settings(self, request: Request) -> Response:
        """`GET` or `PUT /_sim/webhooks/settings`: the app's target URL, client secret and subscriptions."""
        if request.method == "PUT":
            try:
                body = orjson.loads(await request.body() or b"{}")
                self.configure(
                    str(body["targetUrl"]),
                    str(body.get("clientSecret", "")),
                    body.get("subscriptions", []),
                    str(body.get("signatureVersion", "v1")),
                )
            except (ValueError, KeyError, TypeError) as exc:
                return json_response({"error": f"bad settings: {exc}"}, 400)
        subscriptions = [
            {"id": s.id, "eventType": s.event_type, **({"propertyName": s.property_name} if s.property_name else {})}
            for s in self.subscriptions
        ]
        return json_response({"targetUrl": self.target_url, "subscriptions": subscriptions})


def _subscription(number: int, raw: Any) -> Subscription:
    spec = {"eventType": raw} if isinstance(raw, str) else raw
    event_type = str(spec.get("eventType", ""))
    if event_type.removeprefix("contact.") not in EVENT_TYPES or not event_type.startswith("contact."):
        raise ValueError(f"unknown event type {event_type!r}; known: contact.{', contact.'.join(EVENT_TYPES)}")
    prop = spec.get("propertyName")
    if event_type == "contact.propertyChange" and prop not in FIELD_OF:
        raise ValueError(f"contact.propertyChange needs a propertyName of {sorted(FIELD_OF)}")
    return Subscription(number, event_type, prop if event_type == "contact.propertyChange" else None)


def signature_headers(url: str, secret: str, version: str, body: bytes, timestamp: str) -> dict[str, str]:
    """v1 (or v2) in X-HubSpot-Signature, and v3 over method + URI (escapes decoded) + body + timestamp."""
    prefix = b"" if version == "v1" else b"POST" + url.encode()
    uri = _ESCAPED.sub(lambda m: _ESCAPES[m.group().upper()], url)
    v3 = hmac.new(secret.encode(), b"POST" + uri.encode() + body + timestamp.encode(), hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature": hashlib.sha256(secret.encode() + prefix + body).hexdigest(),
        "X-HubSpot-Signature-Version": version,
        "X-HubSpot-Signature-v3": base64.b64encode(v3).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
        "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
    }
