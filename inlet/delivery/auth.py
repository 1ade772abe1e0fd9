"""How inlet authenticates to the team's app besides the signature: a static bearer token, or OAuth2
client credentials (RFC 6749 section 4.4) with the token fetched on first use and again on a 401.

Both are `httpx.Auth` flows, httpx's documented way to add a token and retry once after refreshing it
(https://www.python-httpx.org/advanced/authentication/#custom-authentication-schemes). Written by hand:
authlib would bring a second HTTP stack for twenty lines. Tokens and client secrets never reach a log.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx
from pydantic import SecretStr

from inlet.errors import ConfigError

__all__ = ["BearerToken", "ClientCredentials"]


class BearerToken(httpx.Auth):
    """`Authorization: Bearer <token>` on every request."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken(***)"

    def material(self) -> str:
        """What identifies these credentials (hashed by Destination.fingerprint, never shown)."""
        return "bearer:" + self._token.get_secret_value()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request


class ClientCredentials(httpx.Auth):
    """An OAuth2 client-credentials token, fetched when missing and refreshed once when the app answers 401."""

    requires_response_body = True

    def __init__(self, token_url: str, client_id: str, client_secret: SecretStr, scope: str | None = None) -> None:
        self.token_url, self.client_id, self.scope = token_url, client_id, scope
        self._client_secret = client_secret
        self._token: str | None = None
        self.fetches = 0  # how many tokens were fetched, for tests and run figures

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_url!r}, {self.client_id!r}, ***)"

    def material(self) -> str:
        """What identifies these credentials (hashed by Destination.fingerprint, never shown)."""
        return f"oauth:{self.token_url}:{self.client_id}:{self.scope}:{self._client_secret.get_secret_value()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None:
            token_response = yield self._token_request()
            self._store(token_response)
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            token_response = yield self._token_request()
            self._store(token_response)
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"} | ({"scope": self.scope} if self.scope else {})
        basic = httpx.BasicAuth(self.client_id, self._client_secret.get_secret_value())
        request = httpx.Request("POST", self.token_url, data=form)
        return next(basic.auth_flow(request))

    def _store(self, response: httpx.Response) -> None:
        self.fetches += 1
        try:
            token = response.json()["access_token"] if response.is_success else None
        except (ValueError, KeyError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ConfigError(
                f"the OAuth2 token endpoint {self.token_url} answered {response.status_code} without an access_token; "
                "check the destination's client id and secret (`inlet deliveries destination set --tenant TENANT`)"
            )
        self._token = token
