"""OAuth helpers for tests: sign in to a simulator in-process and keep its tokens in memory."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr

from connectors.egress import EgressPolicy
from connectors.oauth import Grant, OAuth2Spec, OAuthClient, TokenSet, authorization_url, pkce_verifier, request_token
from connectors.oauth_endpoints import bind_grant
from connectors.registry import load
from connectors.simulation import SIM_CLIENT_ID, SIM_CLIENT_SECRET, SimulatorBase

__all__ = [
    "CLIENT",
    "SIMULATOR_EGRESS",
    "MemoryTokens",
    "asgi_client",
    "bound",
    "oauth_parameters",
    "sign_in",
    "token_with_scope",
]

# An installation that lets connections reach the in-process simulators' host (and loopback ones).
SIMULATOR_EGRESS = EgressPolicy(allow_hosts=frozenset({"simulator.test", "127.0.0.1"}))

CLIENT = OAuthClient(
    client_id=SIM_CLIENT_ID, client_secret=SecretStr(SIM_CLIENT_SECRET), redirect_uri="http://inlet.test/cb"
)


def oauth_parameters(app: str, base_url: str) -> dict[str, str]:
    """Every URL parameter of the app (API and OAuth hosts) pointed at one simulator."""
    spec = load(app)[0]
    params = {name: p.default or "" for name, p in spec.parameters.items()}
    params |= {name: base_url for name in params if name.endswith("url")}
    return params | ({"directory": "contoso.onmicrosoft.com"} if "directory" in params else {})


def bound(app: str, base_url: str, grant: Grant = "authorization_code") -> OAuth2Spec:
    """The app's grant with its endpoints on the simulator at `base_url` (the operator's override)."""
    return bind_grant(load(app)[0], grant, oauth_parameters(app, base_url), override=base_url)


async def sign_in(http: httpx.AsyncClient, app: str, base_url: str, grant: Grant = "authorization_code") -> TokenSet:
    """Consent (the simulator approves at once) and exchange the code; or fetch an app-only token."""
    spec = bound(app, base_url, grant)
    if grant == "client_credentials":
        form = {"grant_type": "client_credentials", "scope": " ".join(spec.scopes)}
        return await request_token(http, spec, CLIENT, form, connector=app)
    verifier = pkce_verifier()
    redirect = await http.get(authorization_url(spec, CLIENT, "st4te", verifier))
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CLIENT.redirect_uri}
    form |= {"code_verifier": verifier} if spec.pkce else {}
    return await request_token(http, spec, CLIENT, form, connector=app)


class MemoryTokens:
    """A TokenSource without a store: refreshes through the app's token endpoint, counting its calls."""

    def __init__(self, http: httpx.AsyncClient, app: str, base_url: str, tokens: TokenSet) -> None:
        self._http, self._app, self.tokens = http, app, tokens
        self._spec = bound(app, base_url)
        self.refreshes = 0

    async def access_token(self) -> str:
        return self.tokens.access_token.get_secret_value()

    async def refreshed(self, rejected: str) -> str:
        assert self.tokens.refresh_token is not None
        form = {"grant_type": "refresh_token", "refresh_token": self.tokens.refresh_token.get_secret_value()}
        self.refreshes += 1
        self.tokens = await request_token(
            self._http, self._spec, CLIENT, form, connector=self._app, previous=self.tokens
        )
        return self.tokens.access_token.get_secret_value()


def asgi_client(sim: SimulatorBase) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="https://simulator.test")


async def token_with_scope(http: httpx.AsyncClient, sim: SimulatorBase, scope: str) -> str:
    """An access token granted exactly `scope`, through the simulator's own authorize and token endpoints."""
    assert sim.oauth is not None
    paths, redirect = sim.oauth.quirks, CLIENT.redirect_uri
    consent = {"client_id": SIM_CLIENT_ID, "redirect_uri": redirect, "response_type": "code", "scope": scope}
    consented = await http.get(paths.authorize_path.replace("{directory}", "common"), params=consent)
    location = consented.headers["location"]
    form = {"grant_type": "authorization_code", "code": parse_qs(urlsplit(location).query)["code"][0]}
    form |= {"redirect_uri": redirect, "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET}
    answer = await http.post(paths.token_path.replace("{directory}", "common"), data=form)
    token: str = answer.json()["access_token"]
    return token
