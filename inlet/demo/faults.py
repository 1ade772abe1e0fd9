"""Fault injection and OAuth2 for the demo app, so delivery can be tested against a bad day.

`POST /_demo/faults` with a `FaultConfig` (every field optional):

    {"fail_next": 3, "status": 429, "retry_after": 2}     the next 3 event POSTs answer 429, Retry-After: 2
    {"failure_rate": 0.2, "status": 503, "seed": 7}        each event POST fails with probability 0.2
    {"delay_seconds": 5}                                   every event POST answers 5 s late
    {"reject_ids": ["42"]}                                 a batch holding record 42 answers 422 naming its events
    {"reject_ids": ["42"], "explain": false}               ... a bare 422 that names nothing (inlet bisects)
    {"max_events": 100}                                    a batch of more than 100 events answers 413
    {"revoke_tokens": true}                                the OAuth2 tokens issued so far stop working (401)

`POST /oauth/token` (client credentials, HTTP Basic) issues bearer tokens when the app was started with
`--oauth-client id:secret`; event POSTs then need one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import random
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["FaultConfig", "Faults", "OAuthServer"]


class FaultConfig(BaseModel):
    """What `POST /_demo/faults` sets."""

    fail_next: int = Field(default=0, ge=0)
    status: int = Field(default=503, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int | None = None
    delay_seconds: float = Field(default=0.0, ge=0)
    reject_ids: list[str] = Field(default_factory=list)
    explain: bool = True
    max_events: int | None = Field(default=None, ge=1)
    revoke_tokens: bool = False


class Faults:
    """The faults in force; `before` answers in the app's place when one applies to a request."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random()

    def set(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    async def before(self) -> Response | None:
        """Delay, then fail the request if a count or rate fault says so (before the body is read)."""
        c = self.config
        if c.delay_seconds:
            await asyncio.sleep(c.delay_seconds)
        if c.fail_next > 0:
            self.config = c.model_copy(update={"fail_next": c.fail_next - 1})
            return self._fault(c.status)
        if c.failure_rate and self._rng.random() < c.failure_rate:
            return self._fault(c.status)
        return None

    def refuse(self, events: list[Any]) -> Response | None:
        """413 for an oversized batch; 422 for a batch holding a rejected record."""
        c = self.config
        if c.max_events is not None and len(events) > c.max_events:
            return JSONResponse({"error": f"at most {c.max_events} events per batch"}, 413)
        bad = [e for e in events if e.external_id in c.reject_ids]
        if not bad:
            return None
        body: dict[str, Any] = {"error": "some records are invalid"}
        if c.explain:
            body["rejected"] = [{"event_id": e.event_id, "reason": "rejected by /_demo/faults"} for e in bad]
        return JSONResponse(body, 422)

    def _fault(self, status: int) -> Response:
        retry_after = self.config.retry_after
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return JSONResponse({"error": "injected fault (POST /_demo/faults)"}, status, headers)


class OAuthServer:
    """A client-credentials token endpoint and the check of the tokens it issued."""

    def __init__(self, clients: Mapping[str, str]) -> None:
        self.clients = dict(clients)
        self.tokens: set[str] = set()
        self.issued = 0

    @property
    def enabled(self) -> bool:
        return bool(self.clients)

    async def token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))  # python-multipart is not installed
        client_ok = self._client_ok(request.headers.get("authorization"))
        if form.get("grant_type") != ["client_credentials"] or not client_ok:
            return JSONResponse({"error": "invalid_client"}, 401)
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        self.issued += 1
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def allows(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        return not self.enabled or (scheme.lower() == "bearer" and token in self.tokens)

    def _client_ok(self, authorization: str | None) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = self.clients.get(client_id)
        return scheme.lower() == "basic" and expected is not None and hmac.compare_digest(expected, secret)
