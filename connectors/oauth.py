"""OAuth 2.0 for connectors: the grants an app offers (declared in connector.yaml), the token endpoint
calls, and the httpx auth that keeps a fresh access token on every request.

```yaml
oauth:
  authorization_code:                       # a person signs in and grants access
    authorize_url: "{login_url}/services/oauth2/authorize"
    token_url: "{login_url}/services/oauth2/token"
    revoke_url: "{login_url}/services/oauth2/revoke"
    scopes: [api, refresh_token]
    authorize_params: {prompt: consent}
    parameters_from_token: {base_url: instance_url}   # Salesforce: the org's host comes with the token
  client_credentials:                       # app-only (Microsoft Graph)
    token_url: "{login_url}/{directory}/oauth2/v2.0/token"
    scopes: ["https://graph.microsoft.com/.default"]
```

URLs are `str.format` templates over the connection's parameters, like `base_url`; `bind_grant`
(connectors/oauth_endpoints.py) fills them for one connection, and only a bound grant is ever called, so a
client secret or a refresh token goes nowhere but the hosts connector.yaml names. The exchange is
hand-written on httpx (about a hundred lines): a token refresh here must run under inlet's per-connection
lock and compare-and-swap in the store, which a client library's built-in auto-refresh would bypass.
Nothing here logs or raises a token or a client secret.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.errors import AuthError, NeedsReauth, RetryableError, redact

__all__ = [
    "Grant",
    "InvalidGrant",
    "OAuth2Auth",
    "OAuth2Spec",
    "OAuthClient",
    "TokenSet",
    "TokenSource",
    "authorization_url",
    "pkce_challenge",
    "pkce_verifier",
    "request_token",
]

logger = logging.getLogger(__name__)

Grant = Literal["authorization_code", "client_credentials"]


class OAuth2Spec(BaseModel):
    """One OAuth 2.0 grant of an app: its endpoints, scopes and quirks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    authorize_url: str | None = Field(None, description="the consent page; required for authorization_code")
    token_url: str
    revoke_url: str | None = None
    scopes: list[str] = []
    scope_separator: str = " "
    authorize_params: dict[str, str] = Field({}, description="extra query parameters (Google: access_type=offline)")
    client_auth: Literal["body", "basic"] = Field("body", description="client secret in the form or HTTP Basic")
    pkce: bool = Field(False, description="send an S256 code_challenge (RFC 7636) where the app supports it")
    parameters_from_token: dict[str, str] = Field(
        {},
        description="connection parameter <- token response field (Salesforce's instance_url), or a claim of its "
        "OpenID id_token as `id_token.<claim>` (Graph's tid: the tenant's directory)",
    )
    invalid_grant: list[str] = Field(
        ["invalid_grant"], description="`error` (or HubSpot's `status`) values meaning: sign in again"
    )

    def urls(self) -> list[str]:
        return [url for url in (self.authorize_url, self.token_url, self.revoke_url) if url]

    def endpoint(self, url: str | None) -> str:
        """One of this grant's URLs, refused unless the grant is bound (its templates filled and checked)."""
        if url is None or "{" in url:
            raise ValueError("an OAuth endpoint is used only once bind_grant has filled and checked it")
        return url


class OAuthClient(BaseModel):
    """The team's registered OAuth app at one external app (client id and secret)."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret: SecretStr
    redirect_uri: str = ""


class TokenSet(BaseModel):
    """What a token endpoint handed out; `expires_at` is epoch seconds (None: the app does not say)."""

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: float | None = None
    lifetime: float | None = None
    scope: str = ""
    extra: dict[str, str] = Field({}, description="non-secret fields such as instance_url or api_domain")

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token.get_secret_value(),
            "refresh_token": self.refresh_token.get_secret_value() if self.refresh_token else None,
            "expires_at": self.expires_at,
            "lifetime": self.lifetime,
            "scope": self.scope,
            "extra": self.extra,
        }

    def secrets(self) -> list[str]:
        return [s.get_secret_value() for s in (self.access_token, self.refresh_token) if s is not None]

    def refresh_due(self, now: float, margin_seconds: float = 60.0) -> bool:
        """True shortly before expiry: `margin_seconds`, or a tenth of the lifetime when that is shorter."""
        if self.expires_at is None:
            return False
        margin = min(margin_seconds, (self.lifetime or margin_seconds * 10) / 10)
        return now >= self.expires_at - margin


class InvalidGrant(NeedsReauth):
    """The app refused the refresh token or code (`invalid_grant`): a person must sign in again."""


def authorization_url(spec: OAuth2Spec, client: OAuthClient, state: str, verifier: str | None = None) -> str:
    """The consent page of a bound grant, which a person opens to grant access; `state` comes back unchanged.

    With `spec.pkce`, `verifier` (see `pkce_verifier`) is sent as its S256 challenge; the code exchange then
    needs the verifier as `code_verifier`.
    """
    url = spec.endpoint(spec.authorize_url)
    query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri}
    if spec.scopes:
        query["scope"] = spec.scope_separator.join(spec.scopes)
    query.update(spec.authorize_params)
    if spec.pkce and verifier is not None:
        query |= {"code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
    query["state"] = state
    return f"{url}?{urlencode(query)}"


def pkce_verifier() -> str:
    """A fresh RFC 7636 code verifier (64 URL-safe characters)."""
    return secrets.token_urlsafe(48)


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def request_token(
    http: httpx.AsyncClient,
    spec: OAuth2Spec,
    client: OAuthClient,
    form: Mapping[str, str],
    *,
    connector: str,
    previous: TokenSet | None = None,
) -> TokenSet:
    """POST a grant (`form`: grant_type and its fields) to a bound grant's token endpoint and read the answer.

    A refresh answer without a refresh_token keeps the previous one (Google). `invalid_grant` raises
    InvalidGrant; 5xx, 429 and network failures raise RetryableError; other refusals AuthError.
    """
    url = spec.endpoint(spec.token_url)
    body = dict(form)
    auth: httpx.BasicAuth | None = None
    secret = client.client_secret.get_secret_value()
    if spec.client_auth == "basic":
        auth = httpx.BasicAuth(client.client_id, secret)
    else:
        body |= {"client_id": client.client_id, "client_secret": secret}
    secrets = [secret, *form.values(), *(previous.secrets() if previous else [])]
    started = time.time()
    try:
        # never redirected: a 307 would carry the secret on to wherever the answer points
        response = await http.post(url, data=body, auth=auth or httpx.USE_CLIENT_DEFAULT, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise RetryableError(
            f"{connector}: the token endpoint {url} cannot be reached ({type(exc).__name__})", connector=connector
        ) from None
    answer = _json(response)
    if response.status_code >= 400 or "access_token" not in answer:
        raise _refusal(response.status_code, answer, spec, connector, url, secrets)
    return _token_set(answer, spec, started, previous)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(
    status: int, answer: Mapping[str, Any], spec: OAuth2Spec, connector: str, url: str, secrets: list[str]
) -> Exception:
    code = redact(str(answer.get("error") or answer.get("status") or status), secrets)[:100]
    reason = redact(str(answer.get("error_description") or answer.get("message") or ""), secrets)[:300]
    where = f"{connector}: the token endpoint {url} answered {status} {code}"
    if code in spec.invalid_grant:
        return InvalidGrant(
            f"{where} ({reason}): the grant was revoked or expired; the tenant must connect again "
            f"(`inlet connections connect --tenant TENANT --app {connector}`)",
            connector=connector,
            url=url,
        )
    if status == 429 or status >= 500:
        return RetryableError(f"{where} ({reason}); will retry", connector=connector, url=url)
    return AuthError(
        f"{where} ({reason}); check the OAuth client "
        f"(`inlet oauth clients add --app {connector} --client-id ID --client-secret env:VAR`)",
        connector=connector,
        url=url,
    )


def _token_set(answer: Mapping[str, Any], spec: OAuth2Spec, started: float, previous: TokenSet | None) -> TokenSet:
    lifetime = float(answer["expires_in"]) if answer.get("expires_in") not in (None, "") else None
    refresh = answer.get("refresh_token")
    if not refresh and previous is not None and previous.refresh_token is not None:
        refresh = previous.refresh_token.get_secret_value()  # Google keeps the refresh token it gave first
    wanted = set(spec.parameters_from_token.values())
    extra = {k: str(v) for k, v in answer.items() if k in wanted}
    claims = _id_token_claims(answer.get("id_token")) if any(w.startswith("id_token.") for w in wanted) else {}
    extra |= {w: str(claims[w[9:]]) for w in wanted if w.startswith("id_token.") and w[9:] in claims}
    return TokenSet(
        access_token=SecretStr(str(answer["access_token"])),
        refresh_token=SecretStr(str(refresh)) if refresh else None,
        expires_at=started + lifetime if lifetime is not None else None,
        lifetime=lifetime,
        scope=str(answer.get("scope") or ""),
        extra=extra,
    )


def _id_token_claims(id_token: Any) -> dict[str, Any]:
    """The payload of an id_token received straight from the token endpoint over TLS (OpenID Connect Core
    3.1.3.7 lets a client skip its signature check then); {} when there is none or it is not a JWT."""
    parts = str(id_token or "").split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


class TokenSource(Protocol):
    """Where OAuth2Auth gets its access token (inlet keeps them in the store, under a lock)."""

    async def access_token(self) -> str:
        """A token that is not about to expire (refreshed first when it is)."""
        ...

    async def refreshed(self, rejected: str) -> str:
        """A token other than `rejected`, which the app just answered 401 to."""
        ...


class OAuth2Auth(httpx.Auth):
    """`Authorization: Bearer <access token>` from a TokenSource, refreshed once on a 401."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self.secrets: list[str] = []  # every token this auth has sent, for redaction (the connector shares it)

    def __repr__(self) -> str:
        return "OAuth2Auth(***)"

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("OAuth2Auth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = self._use(await self._source.access_token())
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            await response.aread()
            logger.info("%s answered 401; refreshing the access token once", request.url.host)
            token = self._use(await self._source.refreshed(token))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _use(self, token: str) -> str:
        if token not in self.secrets:
            self.secrets.append(token)
        return token
