"""Pipedrive's webhooks: `/api/v1/webhooks` to manage them, and the v1/v2 person events they deliver.

    POST   /api/v1/webhooks        subscription_url, event_action, event_object, http_auth_user,
                                   http_auth_password, user_id, version ("2.0" by default); at most 40 a user
    GET    /api/v1/webhooks
    DELETE /api/v1/webhooks/{id}

There is no signature: a delivery carries the webhook's HTTP Basic credentials when it has them. A failed
delivery (non-2xx, or no answer in 10 s) is sent again after 3, 30 and 150 s; ten failed first attempts in a
row ban the webhook for 30 minutes (its events meanwhile are lost); three days without a successful
delivery delete it.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.pipedrive.simulator.wire import COMPANY_ID, FIELD_KEYS, OWNER, iso_ms, v1, v1_time, v2
from connectors.simulation import Outbox, Person, Refusal, RetryPolicy, Sent, SimClock

__all__ = ["MAX_WEBHOOKS", "POLICY", "Webhooks", "v1_event", "v2_event"]

MAX_WEBHOOKS = 40
POLICY = RetryPolicy(delays=(3.0, 30.0, 150.0), timeout=10.0)
_BAN_AFTER, _BAN_SECONDS, _GIVE_UP_SECONDS = 10, 1800.0, 3 * 86_400.0
_V2_ACTIONS = {"created": "create", "updated": "change", "deleted": "delete", "purged": "delete", "restored": "change"}
_V1_VERBS = {"create": "added", "change": "updated", "delete": "deleted", "merge": "merged"}


@dataclass
class Webhook:
    id: int
    subscription_url: str
    event_action: str
    event_object: str
    version: str
    user_id: int
    add_time: str
    http_auth_user: str | None = None
    http_auth_password: str | None = None
    first_failures: int = 0  # failed first attempts in a row
    banned_until: float = 0.0
    failing_since: float | None = None  # first failure after the last success

    def shown(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "company_id": COMPANY_ID,
            "owner_id": self.user_id,
            "user_id": self.user_id,
            "event_action": self.event_action,
            "event_object": self.event_object,
            "subscription_url": self.subscription_url,
            "is_active": 1,
            "add_time": self.add_time,
            "remove_time": None,
            "type": "general",
            "http_auth_user": self.http_auth_user,
            "http_auth_password": None if self.http_auth_password is None else "******",
            "remove_reason": None,
            "version": self.version,
        }

    def wants(self, action: str) -> bool:
        """Whether this webhook subscribes to a person event of v2 `action` (create, change, delete, merge)."""
        wanted = (
            self.event_action if self.version == "2.0" else {v: k for k, v in _V1_VERBS.items()}.get(self.event_action)
        )
        return self.event_object in ("person", "*") and (self.event_action == "*" or wanted == action)


class Webhooks:
    """A company's webhooks and the deliveries they get through `outbox`."""

    def __init__(self, outbox: Outbox, clock: SimClock) -> None:
        self.outbox, self.clock = outbox, clock
        self.hooks: dict[int, Webhook] = {}
        self._ids = itertools.count(4321)
        outbox.on_sent = self._sent

    def create(self, body: dict[str, Any]) -> Webhook:
        for name in ("subscription_url", "event_action", "event_object"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise Refusal(400, "invalid", f"{name} is required")
        version = str(body.get("version") or "2.0")
        actions = ("create", "change", "delete", "*") if version == "2.0" else (*_V1_VERBS.values(), "*")
        if version not in ("1.0", "2.0") or body["event_action"] not in actions:
            raise Refusal(400, "invalid", f"event_action must be one of {', '.join(actions)} for version {version}")
        raw_user = str(body.get("user_id") or OWNER["id"])
        if not raw_user.isdigit():
            raise Refusal(400, "invalid", "user_id must be an integer")
        user = int(raw_user)
        if sum(1 for hook in self.hooks.values() if hook.user_id == user) >= MAX_WEBHOOKS:
            raise Refusal(422, "limit", f"A user can have at most {MAX_WEBHOOKS} webhooks")
        hook = Webhook(
            next(self._ids),
            body["subscription_url"],
            body["event_action"],
            body["event_object"],
            version,
            user,
            v1_time(self.clock.now_ms()),
            body.get("http_auth_user") or None,
            body.get("http_auth_password") or None,
        )
        self.hooks[hook.id] = hook
        return hook

    def delete(self, hook_id: int) -> None:
        if self.hooks.pop(hook_id, None) is None:
            raise Refusal(404, "not_found", "Webhook not found")
        self.outbox.drop(str(hook_id))

    def notify(self, kind: str, people: Sequence[Person], merged_to: Person | None = None) -> None:
        """Queue one delivery per person event and webhook subscribed to it (a banned webhook misses it)."""
        self.sweep()
        action = "merge" if kind == "merged" else _V2_ACTIONS.get(kind)
        now = self.clock.time()
        for person in people:
            for hook in self.hooks.values():
                if action is not None and now >= hook.banned_until:
                    self._queue_events(hook, person, action, merged_to)

    def sweep(self) -> None:
        """Delete the webhooks that had no successful delivery for three days."""
        now = self.clock.time()
        for hook in [h for h in self.hooks.values() if h.failing_since and now - h.failing_since > _GIVE_UP_SECONDS]:
            self.delete(hook.id)

    def _queue_events(self, hook: Webhook, person: Person, action: str, merged_to: Person | None) -> None:
        """v2 sends a merge as a `delete` of the merged person and a `change` of the kept one; v1 as `merged`."""
        if action == "merge" and merged_to is not None and hook.version == "2.0":
            pairs = [(person, "delete", {"merged_to_id": str(merged_to.seq + 1)})]
            pairs.append((merged_to, "change", {"merged_from_id": str(person.seq + 1)}))
        else:
            pairs = [(merged_to or person, action, {})]
        for subject, event, extra in pairs:
            if hook.wants(event if hook.version == "2.0" else action):
                self._queue(hook, subject, event, extra)

    def _queue(self, hook: Webhook, person: Person, action: str, extra: dict[str, Any]) -> None:
        now_ms, record = self.clock.now_ms(), (v2(person), v1(person))
        changed = {FIELD_KEYS[c.field]: c.old for c in person.history if c.change == person.change}
        headers = {"Content-Type": "application/json", "User-Agent": "Pipedrive Webhooks"}
        if hook.http_auth_user is not None:
            secret = f"{hook.http_auth_user}:{hook.http_auth_password or ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        event_id = str(uuid.uuid4())

        by = int(person.modified_by) if person.modified_by and person.modified_by.isdigit() else OWNER["id"]
        source = "app" if person.modified_by is None else "api"  # who made the change: a person, or the API

        def render(attempt: int) -> tuple[dict[str, str], bytes]:
            if hook.version == "2.0":
                meta = {"id": event_id, "user_id": str(by), "change_source": source, **extra}
                body = v2_event(record[0], action, now_ms, hook.id, attempt + 1, meta, changed)
            else:
                body = v1_event(record[1], _V1_VERBS[action], now_ms, hook.id, attempt)
                body["meta"] |= {"user_id": by, "change_source": source}
            return headers, orjson.dumps(body)

        self.outbox.queue(str(hook.id), hook.subscription_url, render)

    def _sent(self, sent: Sent) -> None:
        hook = self.hooks.get(int(sent.target)) if sent.target.isdigit() else None
        if hook is None:
            return
        ok = sent.status is not None and 200 <= sent.status < 300
        if ok:
            hook.first_failures, hook.failing_since = 0, None
            return
        hook.failing_since = hook.failing_since or self.clock.time()
        if sent.attempt == 0:
            hook.first_failures += 1
            if hook.first_failures >= _BAN_AFTER:
                hook.banned_until, hook.first_failures = self.clock.time() + _BAN_SECONDS, 0


def v2_event(
    record: dict[str, Any],
    action: str,
    now_ms: int,
    webhook_id: int,
    attempt: int,
    extra: dict[str, Any],
    changed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A v2 delivery: `meta` (string ids, `attempt` from 1), `data`, and `previous` (changed fields only)."""
    meta = {
        "action": action,
        "entity": "person",
        "entity_id": str(record["id"]),
        "company_id": str(COMPANY_ID),
        "correlation_id": str(uuid.uuid4()),
        "id": str(uuid.uuid4()),
        "is_bulk_edit": False,
        "timestamp": iso_ms(now_ms),
        "type": "general",
        "user_id": str(OWNER["id"]),
        "version": "2.0",
        "webhook_id": str(webhook_id),
        "webhook_owner_id": str(OWNER["id"]),
        "change_source": "api",
        "attempt": attempt,
        "host": "acme.pipedrive.com",
        "permitted_user_ids": [str(OWNER["id"])],
        **extra,
    }
    previous = {"create": None, "change": changed or {"job_title": None}, "delete": record}[action]
    return {"meta": meta, "data": None if action == "delete" else record, "previous": previous}


def v1_event(record: dict[str, Any], verb: str, now_ms: int, webhook_id: int, retry: int) -> dict[str, Any]:
    """A v1 delivery: `event` such as `updated.person`, `current`/`previous`, `retry` from 0."""
    meta = {
        "v": 1,
        "action": verb,
        "object": "person",
        "id": record["id"],
        "company_id": COMPANY_ID,
        "user_id": OWNER["id"],
        "host": "acme.pipedrive.com",
        "timestamp": now_ms // 1000,
        "timestamp_micro": now_ms * 1000,
        "permitted_user_ids": [OWNER["id"]],
        "trans_pending": False,
        "is_bulk_update": False,
        "pipedrive_service_name": False,
        "change_source": "app",
        "webhook_id": webhook_id,
    }
    return {
        "v": 1,
        "matches_filters": {"current": [], "previous": []},
        "meta": meta,
        "retry": retry,
        "current": None if verb == "deleted" else record,
        "previous": None if verb == "added" else record,
        "event": f"{verb}.person",
    }
