"""OAuth endpoints are fixed per app: no tenant parameter, token answer or redirect can send the client
secret or a refresh token anywhere but the hosts connector.yaml names (or the operator's override)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine
from typer.testing import CliRunner

from connectors.errors import AuthError, InvalidParameter, SpecError
from connectors.oauth import OAuth2Spec, OAuthClient, request_token
from connectors.oauth_endpoints import bind_grant
from connectors.registry import load, make_simulator, open_connector
from connectors.simulation.oauth import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from connectors.spec import load_spec
from inlet.cli import app as cli
from inlet.errors import ConfigError
from inlet.oauth import finish_connect, oauth_auth, read_tokens, register_client, start_connect
from inlet.oauth.clients import token_client
from inlet.settings import Settings, get_settings
from inlet.store import Vault, add_tenant, create_store_engine, load_connection, migrate
from tests.security.conftest import Recorder, Seen, recording
from tests.support.serving import serve_in_thread

CLIENT = OAuthClient(
    client_id=SIM_CLIENT_ID, client_secret=SecretStr(SIM_CLIENT_SECRET), redirect_uri="http://i.test/cb"
)


def refuse_everything(seen: Seen, own: str) -> tuple[int, dict[str, str], dict[str, str]]:
    return 401, {"error": "invalid_token"}, {}


def test_connect_with_a_tenant_base_url_is_refused_and_the_host_hears_nothing(
    recorders: Callable[..., Recorder], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: `connections connect -p base_url=http://<host>` once sent the client secret there."""
    evil = recorders(refuse_everything)
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INLET_EGRESS__ALLOW_HOSTS", "[]")  # a production installation: nothing internal allowed
    monkeypatch.setenv("SIM_SECRET", SIM_CLIENT_SECRET)
    get_settings.cache_clear()
    runner = CliRunner()
    for args in (["init"], ["tenants", "add", "acme"]):
        assert runner.invoke(cli, args).exit_code == 0
    added = ["oauth", "clients", "add", "--app", "hubspot", "--client-id", "c", "--client-secret", "env:SIM_SECRET"]
    assert runner.invoke(cli, added).exit_code == 0
    result = runner.invoke(
        cli, ["connections", "connect", "-t", "acme", "--app", "hubspot", "-p", f"base_url={evil.url}"]
    )
    assert result.exit_code == 2 and "parameter base_url must be an https URL on api.hubapi.com" in result.output
    assert evil.seen == []


@dataclass
class Installation:
    engine: Engine
    vault: Vault
    settings: Settings
    sim_url: str


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    """The test installation (127.0.0.1 allowed for egress) with HubSpot's OAuth pointed at a simulator by the
    operator, tenant acme, and the team's HubSpot client."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'inlet.db'}")
    migrate(engine)
    vault = Vault(SecretStr(Fernet.generate_key().decode()))
    add_tenant(engine, "acme")
    register_client(engine, vault, "hubspot", SIM_CLIENT_ID, SecretStr(SIM_CLIENT_SECRET))
    sim = make_simulator("hubspot", 3)
    with serve_in_thread(sim.app) as sim_url:
        settings = Settings(home=tmp_path, oauth_redirect_url="http://i.test/cb", oauth_endpoints={"hubspot": sim_url})
        yield Installation(engine, vault, settings, sim_url)
    engine.dispose()


async def connect(world: Installation, parameters: dict[str, str]) -> None:
    """A tenant's sign-in: consent at the (simulated) app, then the callback's code exchange."""
    url = start_connect(
        world.engine,
        world.vault,
        world.settings,
        tenant_id="acme",
        app="hubspot",
        connection_id="c",
        parameters=parameters,
    )
    assert url.startswith(world.sim_url)  # the consent page is the operator's, whatever the tenant gave
    query = parse_qs(urlsplit(httpx.get(url, timeout=10).headers["location"]).query)
    async with token_client(world.settings) as http:
        await finish_connect(
            world.engine, world.vault, world.settings, state=query["state"][0], code=query["code"][0], http=http
        )


async def test_refreshes_go_to_the_operators_endpoint_never_to_the_tenants_base_url(
    installation: Installation, recorders: Callable[..., Recorder]
) -> None:
    evil = recorders(refuse_everything)  # the tenant's "API": answers 401, so the run refreshes its token
    await connect(installation, {"base_url": evil.url, "login_url": evil.url})
    loaded = load_connection(installation.engine, installation.vault, "acme", "c")
    row = read_tokens(installation.engine, installation.vault, "c")
    assert row is not None and row.tokens.refresh_token is not None
    auth = oauth_auth(installation.engine, installation.vault, installation.settings, loaded)
    policy = installation.settings.egress.policy()
    async with open_connector("hubspot", parameters=loaded.connection.parameters, auth=auth, egress=policy) as hubspot:
        with pytest.raises(AuthError):
            await hubspot.get("contacts", "1")
    refresh = row.tokens.refresh_token.get_secret_value()
    assert len(evil.seen) == 2  # the call, and its retry after one refresh (at the operator's endpoint)
    assert not any(seen.carries(SIM_CLIENT_SECRET) or seen.carries(refresh) for seen in evil.seen)
    assert not any("/oauth/" in seen.path for seen in evil.seen)


def test_without_an_override_a_tenant_url_cannot_bind_the_token_endpoint(installation: Installation) -> None:
    settings = installation.settings.model_copy(update={"oauth_endpoints": {}})
    with pytest.raises(ConfigError, match="INLET_OAUTH_ENDPOINTS__<APP>"):
        start_connect(
            installation.engine, installation.vault, settings, tenant_id="acme", app="hubspot", connection_id="c",
            parameters={"base_url": "http://127.0.0.1:9"},
        )  # fmt: skip


async def test_a_token_answer_naming_another_api_host_is_refused_and_nothing_is_stored(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Salesforce's instance_url comes from the token answer: an app (or a man in the middle) is not trusted."""
    settings = installation.settings.model_copy(
        update={"oauth_endpoints": {"salesforce": "https://login.salesforce.com"}}
    )
    register_client(installation.engine, installation.vault, "salesforce", SIM_CLIENT_ID, SecretStr(SIM_CLIENT_SECRET))
    url = start_connect(
        installation.engine,
        installation.vault,
        settings,
        tenant_id="acme",
        app="salesforce",
        connection_id="sf",
        parameters={},
    )
    state = parse_qs(urlsplit(url).query)["state"][0]
    answer = {"access_token": "at", "refresh_token": "rt", "instance_url": "https://evil.example"}
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=answer)))
    async with http:
        with pytest.raises(ConfigError, match="evil.example"):
            await finish_connect(installation.engine, installation.vault, settings, state=state, code="x", http=http)
    assert read_tokens(installation.engine, installation.vault, "sf") is None
    assert (
        "base_url" not in load_connection(installation.engine, installation.vault, "acme", "sf").connection.parameters
    )


@pytest.mark.parametrize(
    ("login_url", "accepted"),
    [
        ("https://login.salesforce.com", True),
        ("https://test.salesforce.com", True),
        ("https://acme.my.salesforce.com", True),
        ("https://acme--dev.sandbox.my.salesforce.com", True),
        ("https://evil.example", False),
        ("http://login.salesforce.com", False),
        ("https://login.salesforce.com.evil.example", False),
        ("https://login.salesforce.com@evil.example", False),
        ("https://evil.example#.my.salesforce.com", False),
        ("https://evil.example/.my.salesforce.com", False),
        ("https://evil.example?x=.my.salesforce.com", False),
        ("https://my.salesforce.com", False),
        ("https://acme.salesforce.com", False),
        ("https://127.0.0.1", False),
    ],
)
def test_salesforce_login_url_is_its_login_host_or_a_my_domain(login_url: str, accepted: bool) -> None:
    def bind() -> OAuth2Spec:
        return bind_grant(load("salesforce")[0], "authorization_code", {"login_url": login_url})

    if accepted:
        assert bind().token_url == f"{login_url}/services/oauth2/token"
    else:
        with pytest.raises(InvalidParameter, match="login_url"):
            bind()


@pytest.mark.parametrize(
    ("directory", "accepted"),
    [
        ("72f988bf-86f1-41af-91ab-2d7cd011db47", True),
        ("contoso.onmicrosoft.com", True),
        ("organizations", True),
        ("../../evil.example", False),
        ("contoso.onmicrosoft.com/../../x", False),
        ("evil.example?x=", False),
        ("contoso.onmicrosoft.com#", False),
        ("72f988bf-86f1-41af-91ab-2d7cd011db47@evil.example", False),
        ("", False),
    ],
)
def test_a_graph_directory_is_a_guid_or_a_domain(directory: str, accepted: bool) -> None:
    def bind() -> OAuth2Spec:
        return bind_grant(load("msgraph")[0], "client_credentials", {"directory": directory})

    if accepted:
        assert bind().token_url == f"https://login.microsoftonline.com/{directory}/oauth2/v2.0/token"
    else:
        with pytest.raises(InvalidParameter, match="directory"):
            bind()


async def test_an_unbound_grant_is_never_called() -> None:
    sent: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=recording(sent)) as http:
        with pytest.raises(ValueError, match="bind_grant"):
            await request_token(http, load("hubspot")[0].oauth["authorization_code"], CLIENT, {}, connector="hubspot")
    assert sent == []


async def test_a_token_endpoint_redirect_is_not_followed_with_the_secret() -> None:
    sent: list[httpx.Request] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(307, headers={"Location": "https://evil.example/token"})

    grant = bind_grant(load("hubspot")[0], "authorization_code", {})
    async with httpx.AsyncClient(transport=httpx.MockTransport(token_endpoint), follow_redirects=True) as http:
        with pytest.raises(AuthError):
            await request_token(
                http, grant, CLIENT, {"grant_type": "refresh_token", "refresh_token": "rt"}, connector="h"
            )
    assert [r.url.host for r in sent] == ["api.hubapi.com"]


@pytest.mark.parametrize(
    ("parameters", "token_url", "problem"),
    [
        ("login_url: {hosts: ['*']}", "{login_url}/token", "must declare the hosts"),
        ("login_url: {}", "{login_url}/token", "must declare the hosts"),
        ("", "http://login.acme.example/token", "must start with https://"),
        ("login_url: {hosts: [login.acme.example]}", "https://x.acme.example/{login_url}/token", "may only open a URL"),
    ],
)
def test_connector_yaml_cannot_declare_an_oauth_endpoint_a_tenant_could_move(
    tmp_path: Path, parameters: str, token_url: str, problem: str
) -> None:
    path = tmp_path / "connector.yaml"
    document = f"""\
        name: acme
        title: Acme
        base_url: https://api.acme.example
        parameters: {{{parameters}}}
        collections: {{users: {{list: {{path: /users}}}}}}
        oauth:
          client_credentials: {{token_url: "{token_url}"}}
        """
    path.write_text(textwrap.dedent(document))
    with pytest.raises(SpecError, match=problem):
        load_spec(path)
