"""Zendesk's webhooks: the Webhooks API that manages them, and the signed user events they deliver.

    POST /api/v2/webhooks                       {"webhook": {name, endpoint, http_method, request_format,
                                                 status, subscriptions: ["zen:event-type:user.created", ...]}}
    GET  /api/v2/webhooks[/{id}]                list (cursor-paged) or show; the signing secret is not in them
    PUT|PATCH|DELETE /api/v2/webhooks/{id}      204
    GET|POST /api/v2/webhooks/{id}/signing_secret   show it, or reset it (201)
    POST /api/v2/webhooks/test                  send a test request now, signed with the static test secret

Each user event is one POST of Zendesk's event envelope (`type`, `account_id`, `id`, `time`,
`zendesk_event_version`, `subject`, `detail` with string ids, `event` with `current`/`previous`), signed
`base64(HMAC-SHA256(signing secret, timestamp + body))` in `X-Zendesk-Webhook-Signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.simulation import Outbox, Person, SimClock, json_response
from connectors.zendesk.simulator.wire import external_id_of, iso, organization_id, role_of, user_id

__all__ = ["ACCOUNT_ID", "TEST_SECRET", "Webhooks", "sign"]

ACCOUNT_ID = 90_817_263
TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="  # the documented secret of unsaved test webhooks
_EVENT = "zen:event-type:"
_METHODS, _FORMATS = ("GET", "POST", "PUT", "PATCH", "DELETE"), ("json", "xml", "form_encoded")
_FIELD_EVENT = {"first": "name_changed", "last": "name_changed", "email": "identity_changed"}
_FIELD_EVENT |= {"phone": "identity_changed", "title": "custom_field_changed", "company": "custom_field_changed"}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`base64(HMAC-SHA256(secret, timestamp + body))`, the secret string used as it is."""
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


@dataclass
class Webhook:
    id: str
    name: str
    endpoint: str
    http_method: str
    request_format: str
    status: str
    subscriptions: list[str]
    created_at: str
    signing_secret: str = field(default_factory=lambda: _new_secret())
    description: str = ""

    def shown(self) -> dict[str, Any]:
        """The webhook as the API shows it: everything but the signing secret."""
        body = {k: v for k, v in self.__dict__.items() if k != "signing_secret"}
        return {**body, "created_by": "-1", "updated_at": self.created_at, "updated_by": "-1"}


class Webhooks:
    """An account's webhooks and the events they send through `outbox`."""

    def __init__(self, outbox: Outbox, clock: SimClock, client: Callable[[], httpx.AsyncClient]) -> None:
        self.outbox, self.clock, self._client = outbox, clock, client
        self.hooks: dict[str, Webhook] = {}
        self._ids = itertools.count(1)

    # -- the Webhooks API ------------------------------------------------------------------------------

    async def collection(self, request: Request) -> Response:
        if request.method == "GET":
            shown = [hook.shown() for hook in self.hooks.values()]
            meta = {"has_more": False, "after_cursor": None, "before_cursor": None}
            return json_response({"webhooks": shown, "meta": meta, "links": {"next": None, "prev": None}})
        spec, problem = _spec(await request.body())
        if problem:
            return _problem(400, "InvalidInput", problem)
        hook = Webhook(f"01H{next(self._ids):023d}", created_at=iso(self.clock.now_ms()), **spec)
        self.hooks[hook.id] = hook
        return json_response({"webhook": hook.shown()}, 201)

    async def one(self, request: Request) -> Response:
        hook = self.hooks.get(request.path_params["webhook_id"])
        if hook is None:
            return _problem(404, "WebhookNotFound", "Webhook not found")
        if request.method == "GET":
            return json_response({"webhook": hook.shown()})
        if request.method == "DELETE":
            del self.hooks[hook.id]
            self.outbox.drop(hook.id)
            return Response(status_code=204)
        spec, problem = _spec(await request.body(), partial=request.method == "PATCH", current=hook)
        if problem:
            return _problem(400, "InvalidInput", problem)
        for name, value in spec.items():
            setattr(hook, name, value)
        return Response(status_code=204)

    async def signing_secret(self, request: Request) -> Response:
        hook = self.hooks.get(request.path_params["webhook_id"])
        if hook is None:
            return _problem(404, "WebhookNotFound", "Webhook not found")
        if request.method == "POST":
            hook.signing_secret = _new_secret()
        secret = {"signing_secret": {"algorithm": "SHA256", "secret": hook.signing_secret}}
        return json_response(secret, 201 if request.method == "POST" else 200)

    async def test(self, request: Request) -> Response:
        """Send one test request now: to a saved webhook (its secret) or to a bare endpoint (the test secret)."""
        body = orjson.loads(await request.body() or b"{}")
        hook = self.hooks.get(str(body.get("webhook_id", "")))
        target = body.get("request") or {}
        endpoint = target.get("endpoint") or (hook.endpoint if hook else None)
        if not endpoint:
            return _problem(400, "InvalidInput", "request.endpoint or webhook_id is required")
        method = str(target.get("http_method") or "POST").upper()
        event = target.get("payload") or {"type": "zen:event-type:webhook.test", "id": str(uuid.uuid4())}
        payload = b"" if method in ("GET", "DELETE") else orjson.dumps(event)  # GET and DELETE carry no body
        headers = self._signed(hook.signing_secret if hook else TEST_SECRET, payload, hook.id if hook else "test")
        async with self._client() as client:
            try:
                answer = await client.request(method, endpoint, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                return json_response({"response": {"status": 0, "headers": [], "body": str(exc)}})
        shown = [{"key": k, "value": v} for k, v in answer.headers.items()]
        return json_response({"response": {"status": answer.status_code, "headers": shown, "body": answer.text}})

    # -- events ----------------------------------------------------------------------------------------

    def notify(self, kind: str, people: Sequence[Person]) -> None:
        """Queue one delivery per event of this mutation and active webhook subscribed to it."""
        for person in people:
            for event_type, change in _events(kind, person):
                for hook in self.hooks.values():
                    if hook.status == "active" and f"{_EVENT}user.{event_type}" in hook.subscriptions:
                        self._queue(hook, person, event_type, change)

    def _queue(self, hook: Webhook, person: Person, event_type: str, change: dict[str, Any]) -> None:
        event = {
            "type": f"{_EVENT}user.{event_type}",
            "account_id": ACCOUNT_ID,
            "id": str(uuid.uuid4()),
            "time": iso(person.modified_ms),
            "zendesk_event_version": "2022-06-20",
            "subject": f"zen:user:{user_id(person.seq)}",
            "detail": _detail(person),
            "event": change,
        }
        body = orjson.dumps(event)
        self.outbox.queue(
            hook.id, hook.endpoint, lambda attempt: (self._signed(hook.signing_secret, body, hook.id), body)
        )

    def _signed(self, secret: str, body: bytes, hook_id: str) -> dict[str, str]:
        stamp = datetime.fromtimestamp(self.clock.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Zendesk Webhook",
            "X-Zendesk-Account-Id": str(ACCOUNT_ID),
            "X-Zendesk-Webhook-Id": hook_id,
            "X-Zendesk-Webhook-Invocation-Id": str(uuid.uuid4().int % 10**10),
            "X-Zendesk-Webhook-Signature": sign(secret, stamp, body),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        }


def _events(kind: str, person: Person) -> list[tuple[str, dict[str, Any]]]:
    """(event type, `event` body) of one mutation of one user."""
    if kind == "created":
        return [("created", {})]
    if kind == "deleted" or (kind == "purged" and person.deleted_ms == person.purged_ms):
        return [("deleted", {}), ("active_changed", {"current": False, "previous": True})]
    if kind == "restored":
        return [("active_changed", {"current": True, "previous": False})]
    if kind != "updated":
        return []
    events = []
    for change in (c for c in person.history if c.change == person.change):
        body: dict[str, Any] = {"current": change.new, "previous": change.old}
        if change.field in ("first", "last"):
            old = person.value_at("first", change.change - 1), person.value_at("last", change.change - 1)
            body = {"current": person.full_name, "previous": " ".join(map(str, old))}
        elif change.field in ("title", "company"):
            body["field"] = {"key": change.field}
        events.append((_FIELD_EVENT[change.field], body))
    return list({event_type: (event_type, body) for event_type, body in events}.values())


def _new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()


def _detail(person: Person) -> dict[str, Any]:
    """The user as the event's `detail`: ids as strings, as Zendesk sends them."""
    return {
        "id": str(user_id(person.seq)),
        "email": person.email,
        "external_id": external_id_of(person) or "",
        "role": role_of(person),
        "organization_id": str(organization_id(person)),
        "default_group_id": "0",
        "created_at": iso(person.created_ms),
        "updated_at": iso(person.modified_ms),
    }


def _spec(raw: bytes, *, partial: bool = False, current: Webhook | None = None) -> tuple[dict[str, Any], str]:
    """The webhook fields of a create or update body, and what is wrong with them ("" when nothing)."""
    try:
        given = orjson.loads(raw or b"{}").get("webhook")
    except (orjson.JSONDecodeError, AttributeError):
        return {}, "the body must be a JSON object with a webhook"
    if not isinstance(given, dict):
        return {}, "the body must hold a webhook object"
    known = ("name", "endpoint", "http_method", "request_format", "status", "subscriptions", "description")
    spec = {k: v for k, v in given.items() if k in known}
    whole = {**(current.__dict__ if current else {}), **spec} if partial or current else spec
    for name in ("name", "endpoint", "http_method", "request_format", "status"):
        if not isinstance(whole.get(name), str) or not whole.get(name):
            return {}, f"webhook.{name} is required"
    if whole["http_method"] not in _METHODS or whole["request_format"] not in _FORMATS:
        return {}, f"http_method must be one of {_METHODS} and request_format one of {_FORMATS}"
    events = whole.get("subscriptions") or []
    if not isinstance(events, list) or not all(isinstance(e, str) and e.startswith(_EVENT) for e in events):
        return {}, "subscriptions must be a list of zen:event-type:... event types"
    if events and (whole["http_method"], whole["request_format"]) != ("POST", "json"):
        return {}, "webhooks subscribed to events must use http_method POST and request_format json"
    if whole["status"] not in ("active", "inactive"):
        return {}, "status must be active or inactive"
    return {**spec, "subscriptions": events} if "subscriptions" in spec or not current else spec, ""


def _problem(status: int, code: str, title: str) -> Response:
    """The Webhooks API's error format (`{"errors": [...]}`), unlike the Support API's."""
    return json_response({"errors": [{"code": code, "title": title}]}, status)
