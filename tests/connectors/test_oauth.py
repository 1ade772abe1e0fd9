"""OAuth grants as connector.yaml declares them, checked against each app's simulated token endpoint."""

from __future__ import annotations

import textwrap
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from connectors.errors import AuthError, NeedsReauth, RetryableError, SpecError
from connectors.oauth import InvalidGrant, OAuth2Auth, TokenSet, authorization_url, pkce_verifier, request_token
from connectors.oauth_endpoints import bind_grant
from connectors.registry import load, make_simulator
from connectors.spec import load_spec
from tests.support.oauth import CLIENT, MemoryTokens, asgi_client, bound, sign_in

BASE = "https://simulator.test"
OAUTH_APPS = ["google_people", "hubspot", "msgraph", "pipedrive", "salesforce", "zendesk"]


def consent_query(app: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(authorization_url(bound(app, BASE), CLIENT, "s")).query)


@pytest.mark.parametrize("app", OAUTH_APPS)
def test_every_crm_app_offers_a_sign_in_with_its_state_and_redirect(app: str) -> None:
    query = consent_query(app)
    assert query["state"] == ["s"] and query["client_id"] == [CLIENT.client_id]
    assert query["redirect_uri"] == [CLIENT.redirect_uri] and query["response_type"] == ["code"]


def test_google_asks_for_offline_access_and_fresh_consent() -> None:
    query = consent_query("google_people")
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["scope"] == ["https://www.googleapis.com/auth/contacts.readonly"]


def test_real_endpoints_are_the_defaults() -> None:
    spec = bind_grant(load("msgraph")[0], "client_credentials", {"directory": "contoso.onmicrosoft.com"})
    assert spec.token_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert load("salesforce")[0].parameters["login_url"].default == "https://login.salesforce.com"
    assert load("hubspot")[0].oauth["authorization_code"].scopes == ["crm.objects.contacts.read"]


async def test_salesforce_hands_out_the_instance_url_and_no_lifetime() -> None:
    async with asgi_client(make_simulator("salesforce", 1)) as http:
        tokens = await sign_in(http, "salesforce", BASE)
    assert tokens.extra == {"instance_url": BASE} and tokens.expires_at is None
    assert load("salesforce")[0].oauth["authorization_code"].parameters_from_token == {"base_url": "instance_url"}


async def test_pipedrive_takes_the_client_in_basic_auth_and_names_the_api_domain() -> None:
    sim = make_simulator("pipedrive", 1)
    async with asgi_client(sim) as http:
        tokens = await sign_in(http, "pipedrive", BASE)
    assert tokens.extra == {"api_domain": BASE} and tokens.refresh_token is not None


async def test_google_keeps_the_first_refresh_token_and_needs_offline_access_for_one() -> None:
    sim = make_simulator("google_people", 1)
    async with asgi_client(sim) as http:
        tokens = await sign_in(http, "google_people", BASE)
        source = MemoryTokens(http, "google_people", BASE, tokens)
        await source.refreshed(tokens.access_token.get_secret_value())
        spec = bound("google_people", BASE).model_copy(update={"authorize_params": {}})
        online = await http.get(authorization_url(spec, CLIENT, "s"))
    assert source.tokens.refresh_token == tokens.refresh_token and source.tokens.access_token != tokens.access_token
    code = parse_qs(urlsplit(online.headers["location"]).query)["code"][0]
    async with asgi_client(sim) as http:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CLIENT.redirect_uri}
        without = await request_token(http, spec, CLIENT, form, connector="g")
    assert without.refresh_token is None


@pytest.mark.parametrize("app", ["msgraph", "zendesk"])
async def test_rotating_refresh_tokens_retire_the_old_one(app: str) -> None:
    async with asgi_client(make_simulator(app, 1)) as http:
        first = await sign_in(http, app, BASE)
        source = MemoryTokens(http, app, BASE, first)
        await source.refreshed("")
        assert source.tokens.refresh_token != first.refresh_token
        with pytest.raises(InvalidGrant, match="connect again"):
            await MemoryTokens(http, app, BASE, first).refreshed("")


async def test_graph_app_only_tokens_come_without_a_refresh_token() -> None:
    sim = make_simulator("msgraph", 1)
    async with asgi_client(sim) as http:
        tokens = await sign_in(http, "msgraph", BASE, grant="client_credentials")
    assert tokens.refresh_token is None and sim.oauth is not None and sim.oauth.counts["client_credentials"] == 1


async def test_hubspot_bad_refresh_token_is_an_invalid_grant() -> None:
    sim = make_simulator("hubspot", 1)
    assert sim.oauth is not None
    async with asgi_client(sim) as http:
        source = MemoryTokens(http, "hubspot", BASE, await sign_in(http, "hubspot", BASE))
        sim.oauth.revoke_all()
        with pytest.raises(NeedsReauth, match="BAD_REFRESH_TOKEN"):
            await source.refreshed("")


async def test_a_wrong_client_secret_is_an_auth_error_that_names_no_secret() -> None:
    sim = make_simulator("hubspot", 1)
    wrong = CLIENT.model_copy(update={"client_secret": SecretStr("not-the-secret-4711")})
    async with asgi_client(sim) as http:
        form = {"grant_type": "refresh_token", "refresh_token": "rt-secret-0815"}
        with pytest.raises(AuthError) as caught:
            await request_token(http, bound("hubspot", BASE), wrong, form, connector="hubspot")
    assert not isinstance(caught.value, NeedsReauth) and "invalid_client" in str(caught.value)
    assert "4711" not in str(caught.value) and "0815" not in str(caught.value)


def test_reprs_mask_tokens() -> None:
    tokens = TokenSet(access_token=SecretStr("at-visible?"), refresh_token=SecretStr("rt-visible?"))
    assert "visible" not in repr(tokens) and "visible" not in repr(OAuth2Auth(MemoryTokens.__new__(MemoryTokens)))
    assert "visible" not in repr(CLIENT.model_copy(update={"client_secret": SecretStr("visible")}))


def test_a_sign_in_grant_needs_an_authorize_url_and_declared_placeholders(tmp_path: Path) -> None:
    path = tmp_path / "connector.yaml"
    base = """\
        name: acme
        title: Acme
        base_url: https://api.acme.example
        collections: {users: {list: {path: /users}}}
        oauth:
          authorization_code: {token_url: "https://login.acme.example/token"}
        """
    path.write_text(textwrap.dedent(base))
    with pytest.raises(SpecError, match="authorize_url"):
        load_spec(path)
    path.write_text(
        textwrap.dedent(base).replace(
            '{token_url: "https://login', '{authorize_url: "{login}/a", token_url: "https://login'
        )
    )
    with pytest.raises(SpecError, match="login"):
        load_spec(path)


async def test_a_token_endpoint_that_is_down_is_retryable() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503, json={}))) as http:
        with pytest.raises(RetryableError):
            await request_token(http, bound("hubspot", BASE), CLIENT, {"grant_type": "x"}, connector="h")


@pytest.mark.parametrize("app", OAUTH_APPS)
async def test_the_simulated_revoke_endpoint_ends_the_grant(app: str) -> None:
    sim = make_simulator(app, 1)
    assert sim.oauth is not None and sim.oauth.quirks.revoke_path is not None
    path, method = sim.oauth.quirks.revoke_path, sim.oauth.quirks.revoke_method
    async with asgi_client(sim) as http:
        tokens = await sign_in(http, app, BASE)
        assert tokens.refresh_token is not None
        refresh, access = tokens.refresh_token.get_secret_value(), tokens.access_token.get_secret_value()
        bearer = {"Authorization": f"Bearer {access}"}
        if "{token}" in path:  # HubSpot: DELETE /oauth/v1/refresh-tokens/{token}
            answer = await http.request(method, path.format(token=refresh))
        elif method == "DELETE":  # Zendesk: the access token in use revokes itself
            answer = await http.request(method, path, headers=bearer)
        else:  # RFC 7009 (Salesforce, Google, Pipedrive); Graph's revokeSignInSessions reads the bearer
            answer = await http.post(path, data={"token": refresh}, headers=bearer)
        assert answer.status_code in (200, 204)
        if app == "zendesk":
            assert not sim.oauth.accepts(f"Bearer {access}")
        else:
            with pytest.raises(NeedsReauth):
                await MemoryTokens(http, app, BASE, tokens).refreshed("")


async def test_graph_names_the_tenant_directory_in_its_id_token() -> None:
    from connectors.msgraph.simulator import TENANT_ID

    async with asgi_client(make_simulator("msgraph", 1)) as http:
        tokens = await sign_in(http, "msgraph", BASE)
    assert tokens.extra == {"id_token.tid": TENANT_ID}
    assert load("msgraph")[0].oauth["authorization_code"].parameters_from_token == {"directory": "id_token.tid"}


@pytest.mark.parametrize("app", ["google_people", "msgraph", "salesforce"])
async def test_pkce_apps_get_a_challenge_and_refuse_a_code_without_its_verifier(app: str) -> None:
    spec = bound(app, BASE)
    verifier = pkce_verifier()
    async with asgi_client(make_simulator(app, 1)) as http:
        redirect = await http.get(authorization_url(spec, CLIENT, "s", verifier))
        assert parse_qs(urlsplit(authorization_url(spec, CLIENT, "s", verifier)).query)["code_challenge_method"] == [
            "S256"
        ]
        code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CLIENT.redirect_uri}
        with pytest.raises(NeedsReauth):
            await request_token(http, spec, CLIENT, form | {"code_verifier": pkce_verifier()}, connector=app)
