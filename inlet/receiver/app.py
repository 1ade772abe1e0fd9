"""The webhook receiver (`inlet serve`): a verified change is in the inbox before the app hears 2xx.

    POST /webhooks/{app}/{tenant}/{connection}   -> 200 {"accepted": new, "duplicates": repeats}
    POST /webhooks/{app}                         the same, routed by the account the delivery names
    GET  /health                                 {"ok": true}
    GET  /oauth/callback                         the OAuth connect flow's return (inlet.oauth_routes)

A call is handled in this order, and the first failure answers it with nothing written:

1. the app must have webhooks (its hooks verify and parse them): else 404;
2. the body is read up to `max_body_bytes` (413);
3. the connection must exist, belong to the tenant in the URL and be of that app: else 404, the same
   answer in each case. `/webhooks/{app}` asks the app's `webhook_account` hook (HubSpot's portalId) and
   takes the one connection whose `webhook_account` parameter matches; an app without that hook is
   routed only when it has exactly one connection;
4. a subscription handshake (Graph's `validationToken`) is answered as the hook says, before any
   signature check, since it carries none;
5. an empty body gets 400; the signature is verified on the raw bytes with the secret of the subscription
   inlet made for the connection (inlet.service.subscriptions), else its credential `webhook_secret` (401);
   verified lifecycle events (Graph's `missed`, ...) are kept for the scheduler's tick;
6. the hook parses the events (400 for a payload it cannot read);
7. the events and the call's receipt are written to the inbox in one transaction (503 + Retry-After when
   the store fails: the app retries, as nothing was acknowledged), the app gets 200, and then, when
   something new arrived, `notify(tenant, connection)` runs (after the answer, so a slow notification
   never delays it; a failed one is logged, the changes wait in the inbox).

Replays: a verified delivery leaves receipts, one for its raw body and one for each event id the app gave,
never for its headers: a copy with an extra, reordered or re-signed header is the same delivery. A delivery
whose body, or whose every event, was received within `receipt_seconds` (24 h) gets 401 "replayed" and
writes nothing; of concurrent copies exactly one gets 200 (inlet.receiver.receipts, docs/security.md). An
app's own re-delivery is refused the same way, harmlessly: its events are in the inbox. An untimestamped
delivery replayed after the retention is let in as what every webhook is, a hint: the incremental import
fetches each record it names, and a deletion stands only when the app no longer has the record.

Never logged above DEBUG: secrets, signatures, bodies. The URL a signature covers is the URL as received
(`str(request.url)`); behind a reverse proxy, keep the Host header and let uvicorn trust the proxy's
X-Forwarded-Proto, or HubSpot's v2/v3 signatures will not match.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.background import BackgroundTasks
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import Hooks
from connectors.errors import WebhookRejected
from connectors.registry import available, load
from connectors.webhooks import WebhookEvent, WebhookRequest
from inlet.errors import NotFound
from inlet.oauth import oauth_routes
from inlet.receiver.receipts import RECEIPT_SECONDS, Receipts
from inlet.settings import Settings
from inlet.store import (
    Connection,
    HeardChange,
    LoadedConnection,
    Vault,
    list_connections,
    load_connection,
    note_lifecycle,
    subscription_secret,
)

__all__ = ["RETRY_AFTER_SECONDS", "SECRET_CREDENTIAL", "create_receiver"]

logger = logging.getLogger(__name__)

SECRET_CREDENTIAL = "webhook_secret"
RETRY_AFTER_SECONDS = 5
_PAYLOAD_ERRORS = (ValueError, LookupError, TypeError)  # orjson.JSONDecodeError is a ValueError
_T = TypeVar("_T")


class _Refused(Exception):
    """An answer other than 200, with the reason the caller sees."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


def create_receiver(
    engine: Engine,
    vault: Vault,
    notify: Callable[[str, str], None],
    *,
    max_body_bytes: int = 5_000_000,
    clock: Callable[[], float] = time.time,
    settings: Settings | None = None,
    receipt_seconds: float = RECEIPT_SECONDS,
) -> Starlette:
    """The receiver as an ASGI app; `notify(tenant, connection)` runs after new changes reach the inbox, and
    a delivery's receipts refuse its replays for `receipt_seconds`."""
    receipts = Receipts(engine, receipt_seconds)
    receiver = _Receiver(engine, vault, notify, max_body_bytes, clock, frozenset(available()), receipts)
    return Starlette(
        routes=[
            Route("/health", _health, methods=["GET"]),
            Route("/webhooks/{app}", receiver.routed, methods=["POST"]),
            Route("/webhooks/{app}/{tenant}/{connection}", receiver.addressed, methods=["POST"]),
            *oauth_routes(engine, vault, settings, clock=clock),
        ]
    )


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


@dataclass(frozen=True)
class _Receiver:
    engine: Engine
    vault: Vault
    notify: Callable[[str, str], None]
    max_body_bytes: int
    clock: Callable[[], float]
    apps: frozenset[str]
    receipts: Receipts

    async def addressed(self, request: Request) -> Response:
        app, tenant, connection = (request.path_params[k] for k in ("app", "tenant", "connection"))
        return await self._answer(request, app, lambda hooks, call: self._addressed(app, tenant, connection))

    async def routed(self, request: Request) -> Response:
        app = request.path_params["app"]
        return await self._answer(request, app, lambda hooks, call: self._routed(app, hooks, call))

    async def _answer(
        self, request: Request, app: str, find: Callable[[Hooks, WebhookRequest], LoadedConnection]
    ) -> Response:
        """Run every step; map each failure to its status and never answer 2xx for what the inbox lacks."""
        try:
            hooks = self._hooks(app)
            call = WebhookRequest(
                request.method, str(request.url), httpx.Headers(request.headers.raw), await self._body(request)
            )
            return await run_in_threadpool(self._receive, app, hooks, call, find)
        except _Refused as refused:
            return JSONResponse({"error": refused.reason}, refused.status, headers=refused.headers)
        except SQLAlchemyError as exc:
            logger.error("%s webhook: the store failed (%s); answered 503", app, type(exc).__name__)
            return _unavailable("the inlet store is unavailable; retry later")
        except Exception:
            logger.exception("%s webhook: unexpected failure; answered 503, nothing acknowledged", app)
            return _unavailable("the receiver failed; retry later")

    def _hooks(self, app: str) -> Hooks:
        hooks = load(app)[1] if app in self.apps else None
        if hooks is None or hooks.verify_webhook is None or hooks.parse_webhook is None:
            raise _Refused(404, f"{app} has no webhooks")
        return hooks

    async def _body(self, request: Request) -> bytes:
        """The raw body, refused with 413 as soon as it passes the cap."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _Refused(413, f"the body is larger than {self.max_body_bytes} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise _Refused(413, f"the body is larger than {self.max_body_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise _Refused(400, "the client disconnected before the body was read") from None
        return b"".join(chunks)

    def _receive(
        self,
        app: str,
        hooks: Hooks,
        call: WebhookRequest,
        find: Callable[[Hooks, WebhookRequest], LoadedConnection],
    ) -> Response:
        """The blocking steps (store, hooks), run in a worker thread."""
        loaded = find(hooks, call)
        where = f"{app} webhook for {loaded.tenant.id}/{loaded.connection.id}"
        if hooks.webhook_handshake is not None and (reply := _payload(app, where, hooks.webhook_handshake, call)):
            logger.info("%s: answered a subscription handshake", where)
            return Response(reply.body, reply.status, headers=reply.headers)
        if not call.body:
            raise _Refused(400, "the webhook body is empty")
        self._verify(app, where, hooks, loaded, call)
        if hooks.webhook_lifecycle is not None:
            self._lifecycle(where, loaded, _payload(app, where, hooks.webhook_lifecycle, call))
        assert hooks.parse_webhook is not None  # _hooks checked it
        events = _checked(app, where, _payload(app, where, hooks.parse_webhook, call))
        return self._store(where, loaded, events, hashlib.sha256(call.body).hexdigest())

    def _verify(self, app: str, where: str, hooks: Hooks, loaded: LoadedConnection, call: WebhookRequest) -> None:
        """With the secret of the subscription inlet made for the connection, else its `webhook_secret` credential
        (a webhook the operator set up by hand)."""
        secret = subscription_secret(self.engine, self.vault, loaded.connection.id)
        secret = secret or loaded.credentials.get(SECRET_CREDENTIAL)
        if secret is None:
            logger.warning("%s: the connection has no %s credential; refused", where, SECRET_CREDENTIAL)
            raise _Refused(401, f"the connection has no {SECRET_CREDENTIAL} credential to verify {app} webhooks")
        assert hooks.verify_webhook is not None  # _hooks checked it
        try:
            hooks.verify_webhook(call, secret.get_secret_value(), self.clock())
        except WebhookRejected as exc:
            logger.warning("%s rejected: %s", where, exc)
            raise _Refused(401, str(exc)) from None

    def _lifecycle(self, where: str, loaded: LoadedConnection, events: list[tuple[str, str]]) -> None:
        """Keep the verified lifecycle events for the scheduler's tick (renew, re-create, resync), before the 2xx."""
        for event, subscription in events:
            kept = note_lifecycle(self.engine, loaded.connection.id, event, subscription)
            logger.info("%s: lifecycle event %s %s", where, event, "kept" if kept else "for another subscription")

    def _store(
        self, where: str, loaded: LoadedConnection, events: Sequence[WebhookEvent], body_digest: str
    ) -> Response:
        connection = loaded.connection
        changes = [
            HeardChange(
                tenant_id=connection.tenant_id,
                connection_id=connection.id,
                data_source=connection.data_source,
                external_id=event.external_id,
                kind=event.kind,
                source="webhook",
                source_event_id=f"{event.event_id}" if event.event_id is not None else None,
                occurred_at=f"{event.occurred_at}" if event.occurred_at is not None else None,
            )
            for event in events
        ]
        now = self.clock()
        added = self.receipts.receive(connection.id, changes, body_digest, now)
        if added < 0:
            logger.warning("%s: a replayed delivery; refused", where)
            raise _Refused(401, "replayed")
        logger.info("%s: %d events, %d new", where, len(changes), added)
        after = BackgroundTasks()  # run once the app has its answer
        if added:
            after.add_task(self._notify, where, connection)
        if self.receipts.forget_due(now):
            after.add_task(self.receipts.forget, now)
        return JSONResponse({"accepted": added, "duplicates": len(changes) - added}, background=after)

    def _notify(self, where: str, connection: Connection) -> None:
        """The changes are safe in the inbox: a failed notification is logged, the delivery still acknowledged."""
        try:
            self.notify(connection.tenant_id, connection.id)
        except Exception:
            logger.exception("%s: the changes are in the inbox but the notification failed", where)

    def _addressed(self, app: str, tenant: str, connection: str) -> LoadedConnection:
        """The same answer for a missing tenant, a missing connection and another app's connection."""
        try:
            loaded = load_connection(self.engine, self.vault, tenant, connection)
        except NotFound:
            loaded = None
        if loaded is None or loaded.connection.app != app:
            raise _Refused(404, f"no {app} connection {connection!r} for tenant {tenant!r}; check the webhook URL")
        return loaded

    def _routed(self, app: str, hooks: Hooks, call: WebhookRequest) -> LoadedConnection:
        candidates = [c for c in list_connections(self.engine) if c.app == app]
        full_route = f"use /webhooks/{app}/{{tenant}}/{{connection}}"
        if hooks.webhook_account is None:
            if len(candidates) != 1:
                raise _Refused(404, f"{app} webhooks name no account to route by; {full_route}")
            return load_connection(self.engine, self.vault, candidates[0].tenant_id, candidates[0].id)
        account = _payload(app, f"{app} webhook", hooks.webhook_account, call)
        if account is None:
            raise _Refused(404, f"the {app} webhook names no account to route by; {full_route}")
        matches = [c for c in candidates if c.parameters.get("webhook_account") == account]
        if len(matches) != 1:
            problem = "no connection has" if not matches else f"{len(matches)} connections have"
            raise _Refused(404, f"{problem} the parameter webhook_account={account!r} for {app}; {full_route}")
        return load_connection(self.engine, self.vault, matches[0].tenant_id, matches[0].id)


def _payload(app: str, where: str, hook: Callable[[WebhookRequest], _T], call: WebhookRequest) -> _T:
    """A hook's reading of the call: 401 when it rejects the call, 400 when it cannot read the payload."""
    try:
        return hook(call)
    except WebhookRejected as exc:
        logger.warning("%s rejected: %s", where, exc)
        raise _Refused(401, str(exc)) from None
    except _PAYLOAD_ERRORS as exc:
        logger.warning("%s: not a %s webhook payload (%s)", where, app, type(exc).__name__)
        logger.debug("%s: %s", where, exc)
        raise _Refused(400, f"not a {app} webhook payload: {type(exc).__name__}: {exc}") from None


def _checked(app: str, where: str, events: object) -> list[WebhookEvent]:
    """The parsed events, or 400 when the hook returned something else."""
    if isinstance(events, list) and all(
        isinstance(e, WebhookEvent)
        and e.kind in ("upsert", "deleted")
        and isinstance(e.external_id, str)
        and e.external_id
        for e in events
    ):
        return events
    logger.warning("%s: the payload did not parse into record changes", where)
    raise _Refused(400, f"not a {app} webhook payload: it does not announce record changes by id")


def _unavailable(reason: str) -> Response:
    return JSONResponse({"error": reason}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
