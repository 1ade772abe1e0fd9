"""An app's OAuth 2.0 endpoints for its simulator: authorize, token (code, refresh, client credentials), revoke.

Each simulator declares its app's paths and quirks as `OAuthQuirks`; `SimulatorBase` mounts the routes and
accepts a live access token it issued in place of its static token. Lifetimes go down to fractions of a
second, so a test can watch an import survive several expiries:

    sim.oauth.configure(lifetime_seconds=2)          # or POST /_sim/oauth {"lifetime_seconds": 2}
    sim.oauth.revoke_all()                           # the tenant revoked access: refreshes get invalid_grant
    sim.oauth.counts["refresh_token"]                # grants served, by grant type

The authorize endpoint approves at once (no consent page) and redirects to `redirect_uri?code=...&state=...`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["JWT_BEARER", "OAuthQuirks", "OAuthServer", "SIM_CLIENT_ID", "SIM_CLIENT_SECRET"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

SIM_CLIENT_ID = "sim-client-id"
SIM_CLIENT_SECRET = "sim-client-secret"


@dataclass(frozen=True)
class OAuthQuirks:
    """Where an app's OAuth endpoints live and how its token answers differ from the RFC."""

    authorize_path: str
    token_path: str
    revoke_path: str | None = None
    revoke_method: str = "POST"  # HubSpot and Zendesk revoke with DELETE
    revoke_signs_out: bool = False  # Graph's revokeSignInSessions: every token of the grant stops working
    expires_in: bool = True  # Salesforce answers without expires_in
    rotate_refresh: bool = False  # a refresh hands out a new refresh token and retires the old one
    refresh_in_refresh_answer: bool = True  # Google answers a refresh without a refresh_token
    base_url_field: str | None = None  # Salesforce instance_url, Pipedrive api_domain: the API root
    client_credentials: bool = False  # Microsoft Graph app-only, Salesforce client-credentials flow
    jwt_bearer: bool = False  # Salesforce's JWT bearer flow: a signed assertion instead of a client secret
    offline_param: tuple[str, str] | None = None  # Google gives a refresh token only with access_type=offline
    id_token: dict[str, str] | None = None  # claims of the id_token handed out when `openid` is in the scope
    invalid_grant: Callable[[], tuple[int, dict[str, Any]]] = field(
        default=lambda: (400, {"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"})
    )


@dataclass
class _Grant:
    scope: str
    refresh: bool
    challenge: str | None = None  # PKCE S256 code_challenge given with the consent


class OAuthServer:
    """The token state of one simulated app: codes, access tokens with expiry, refresh tokens."""

    def __init__(
        self, quirks: OAuthQuirks, lifetime_seconds: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.quirks = quirks
        self._now = clock  # epoch seconds; the simulator's clock, so advancing it expires access tokens
        self.lifetime_seconds = lifetime_seconds
        self.token_delay = 0.0  # seconds each token request takes (to make refresh races visible)
        self.prefix = "sim"
        self.client_id, self.client_secret = SIM_CLIENT_ID, SIM_CLIENT_SECRET
        self.counts: dict[str, int] = {"authorization_code": 0, "refresh_token": 0, "client_credentials": 0}
        self.counts |= {"refused": 0, "revoked": 0}
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, _Grant]] = {}
        self._access: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self._scopes: dict[str, str] = {}  # access token -> the scope it was granted
        self._refresh: dict[str, _Grant] = {}

    def configure(self, **options: Any) -> None:
        """Set lifetime_seconds, token_delay, prefix (of issued tokens), client_id or client_secret."""
        for name, value in options.items():
            if name not in ("lifetime_seconds", "token_delay", "prefix", "client_id", "client_secret"):
                raise ValueError(f"unknown OAuth option {name!r}")
            setattr(self, name, value)

    def accepts(self, authorization: str) -> bool:
        """True for `Bearer <a live access token this server issued>`."""
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and self._access.get(token, 0.0) > self._now()

    def scope_of(self, authorization: str) -> str:
        """The space-separated scope granted to the bearer token of `authorization` ("" when unknown)."""
        with self._lock:
            return self._scopes.get(authorization.partition(" ")[2], "")

    def revoke_all(self) -> None:
        """The tenant revoked the app: every token stops working."""
        with self._lock:
            self._access.clear()
            self._refresh.clear()
            self.counts["revoked"] += 1

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access = dict.fromkeys(self._access, 0.0)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counts, "lifetime_seconds": self.lifetime_seconds, "live_refresh_tokens": len(self._refresh)}

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(self.quirks.authorize_path, self._authorize, methods=["GET"]),
            Route(self.quirks.token_path, self._token, methods=["POST"]),
            Route("/_sim/oauth", self._control, methods=["GET", "POST"]),
        ]
        if self.quirks.revoke_path:
            routes.append(Route(self.quirks.revoke_path, self._revoke, methods=[self.quirks.revoke_method]))
        return routes

    # -- endpoints -----------------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        params = request.query_params
        redirect = params.get("redirect_uri", "")
        if params.get("client_id") != self.client_id or not redirect or params.get("response_type") != "code":
            return _error(400, "invalid_request", "unknown client_id, or no redirect_uri or response_type=code")
        offline = self.quirks.offline_param
        grant = _Grant(params.get("scope", ""), refresh=offline is None or params.get(offline[0]) == offline[1])
        if params.get("code_challenge"):
            if params.get("code_challenge_method") != "S256":
                return _error(400, "invalid_request", "code_challenge_method must be S256")
            grant.challenge = params["code_challenge"]
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = (redirect, grant)
        query = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{redirect}{'&' if '?' in redirect else '?'}{query}", status_code=302)

    async def _token(self, request: Request) -> Response:
        fields = await _form(request)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        grant_type = fields.get("grant_type", "")
        signed = grant_type == JWT_BEARER and self.quirks.jwt_bearer  # the assertion authenticates the client
        if not signed and not self._client_ok(request, fields):
            return self._refuse(401, {"error": "invalid_client", "error_description": "client authentication failed"})
        with self._lock:
            grant = self._grant(grant_type, fields)
            if isinstance(grant, Response):
                return grant
            self.counts[grant_type] = self.counts.get(grant_type, 0) + 1
            body = self._issue(request, grant, grant_type, fields.get("refresh_token"))
        return _json(200, body)

    def _grant(self, grant_type: str, fields: dict[str, str]) -> _Grant | Response:
        """What the token request is granted, or the refusal."""
        if grant_type == "authorization_code":
            found = self._codes.pop(fields.get("code", ""), None)
            if found is None or found[0] != fields.get("redirect_uri") or not _verified(found[1], fields):
                return self._refuse(*self.quirks.invalid_grant())
            return found[1]
        if grant_type == "refresh_token":
            old = fields.get("refresh_token", "")
            if old not in self._refresh:
                return self._refuse(*self.quirks.invalid_grant())
            return self._refresh.pop(old) if self.quirks.rotate_refresh else self._refresh[old]
        if grant_type == "client_credentials" and self.quirks.client_credentials:
            return _Grant(fields.get("scope", ""), refresh=False)
        if grant_type == JWT_BEARER and self.quirks.jwt_bearer:
            claims = _claims(fields.get("assertion", ""))
            if claims.get("iss") != self.client_id or not claims.get("sub") or claims.get("exp", 0) <= self._now():
                return self._refuse(400, {"error": "invalid_grant", "error_description": "invalid assertion"})
            return _Grant(str(claims.get("scope", "api")), refresh=False)
        return self._refuse(400, {"error": "unsupported_grant_type"})

    async def _revoke(self, request: Request) -> Response:
        fields = await _form(request)
        token = request.path_params.get("token") or fields.get("token") or request.query_params.get("token", "")
        if not token:
            header = request.headers.get("authorization", "")
            token = header.partition(" ")[2]
        if self.quirks.revoke_signs_out:
            if not self.accepts(request.headers.get("authorization", "")):
                return _error(401, "invalid_token", "revokeSignInSessions needs a live access token")
            self.revoke_all()
            return _json(200, {"value": True})
        with self._lock:
            known = self._refresh.pop(token, None) is not None or self._access.pop(token, None) is not None
            self.counts["revoked"] += known
        return Response(status_code=200 if request.method == "POST" else 204)

    async def _control(self, request: Request) -> Response:
        if request.method == "POST":
            body = orjson.loads(await request.body() or b"{}")
            if body.pop("revoke_all", False):
                self.revoke_all()
            if body.pop("expire_access_tokens", False):
                self.expire_access_tokens()
            try:
                self.configure(**body)
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
        return _json(200, self.stats())

    # -- parts ---------------------------------------------------------------------------------------

    def _client_ok(self, request: Request, fields: dict[str, str]) -> bool:
        given = (fields.get("client_id"), fields.get("client_secret"))
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(encoded).decode(errors="replace").partition(":")
            given = (user, password)
        return given == (self.client_id, self.client_secret)

    def _refuse(self, status: int, body: dict[str, Any]) -> Response:
        self.counts["refused"] += 1
        return _json(status, body)

    def _issue(self, request: Request, grant: _Grant, grant_type: str, old_refresh: str | None) -> dict[str, Any]:
        access = f"{self.prefix}-at-{secrets.token_urlsafe(18)}"
        self._access[access] = self._now() + self.lifetime_seconds
        self._scopes[access] = grant.scope
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "scope": grant.scope}
        if self.quirks.expires_in:
            body["expires_in"] = max(1, round(self.lifetime_seconds))
        if grant.refresh and grant_type != "client_credentials":
            if grant_type == "refresh_token" and not self.quirks.rotate_refresh:
                refresh = old_refresh
            else:
                refresh = f"{self.prefix}-rt-{secrets.token_urlsafe(18)}"
                self._refresh[refresh] = grant
            if grant_type == "authorization_code" or self.quirks.refresh_in_refresh_answer:
                body["refresh_token"] = refresh
        if self.quirks.id_token is not None and "openid" in grant.scope.split():
            body["id_token"] = _unsigned_jwt({**self.quirks.id_token, "aud": self.client_id})
        if self.quirks.base_url_field:
            body[self.quirks.base_url_field] = str(request.base_url).rstrip("/")
        return body


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (parsed here: python-multipart is not a dependency)."""
    return {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}


def _verified(grant: _Grant, fields: dict[str, str]) -> bool:
    """PKCE: a code issued with a challenge is exchanged only with its verifier."""
    if grant.challenge is None:
        return True
    digest = hashlib.sha256(fields.get("code_verifier", "").encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == grant.challenge


def _claims(assertion: str) -> dict[str, Any]:
    """The claims of a JWT (its signature is the app's business: the simulator has no certificate)."""
    parts = assertion.split(".")
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _unsigned_jwt(claims: dict[str, str]) -> str:
    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sim-signature"


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, error: str, description: str) -> Response:
    return _json(status, {"error": error, "error_description": description})
