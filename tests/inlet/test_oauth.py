"""The OAuth connect flow and token refresh on the store (SQLite and PostgreSQL), against simulators over loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, text

from connectors.errors import NeedsReauth
from connectors.oauth import TokenSet
from connectors.registry import make_simulator, open_connector
from connectors.simulation import SIM_CLIENT_ID, SIM_CLIENT_SECRET, OAuthServer
from inlet.oauth import (
    StoredTokens,
    client_for,
    connect_app_only,
    connect_link,
    oauth_auth,
    read_tokens,
    register_client,
    save_tokens,
    start_connect,
    swap_tokens,
)
from inlet.oauth.clients import bound_grant, token_client
from inlet.receiver import create_receiver
from inlet.service import connection_status
from inlet.settings import Settings
from inlet.store import Vault, add_tenant, load_connection
from tests.support.serving import serve_in_thread


@dataclass
class OAuthWorld:
    """A store with tenant acme, the team's HubSpot OAuth client, a HubSpot simulator and the receiver."""

    engine: Engine
    vault: Vault
    settings: Settings
    oauth: OAuthServer
    sim_url: str
    receiver_url: str
    skew: dict[str, float] = field(default_factory=lambda: {"seconds": 0.0})

    def consent(self, connection: str = "acme-hubspot") -> dict[str, str]:
        """Open the consent link; the simulator approves at once and redirects with code and state."""
        url = start_connect(
            self.engine,
            self.vault,
            self.settings,
            tenant_id="acme",
            app="hubspot",
            connection_id=connection,
            parameters={"base_url": self.sim_url, "login_url": self.sim_url},
        )
        redirect = httpx.get(url, timeout=10)
        assert redirect.status_code == 302
        query = parse_qs(urlsplit(redirect.headers["location"]).query)
        return {"code": query["code"][0], "state": query["state"][0]}

    def callback(self, **params: str) -> httpx.Response:
        return httpx.get(f"{self.receiver_url}/oauth/callback", params=params, timeout=30)

    def connected(self) -> None:
        assert self.callback(**self.consent()).status_code == 200

    def source(self, clock_offset: float = 0.0) -> StoredTokens:
        """What a run builds: a token source on the stored tokens, its clock `clock_offset` seconds ahead."""
        loaded = load_connection(self.engine, self.vault, "acme", "acme-hubspot")
        return StoredTokens(
            self.engine,
            self.vault,
            "acme-hubspot",
            bound_grant(self.settings, "hubspot", "authorization_code", loaded.connection.parameters),
            client_for(self.engine, self.vault, self.settings, "hubspot", {}),
            connector="hubspot",
            http=lambda: token_client(self.settings),
            clock=lambda: time.time() + clock_offset,
        )


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[OAuthWorld]:
    vault = Vault(SecretStr(Fernet.generate_key().decode()))
    sim = make_simulator("hubspot", 30)
    assert sim.oauth is not None
    skew = {"seconds": 0.0}
    add_tenant(engine, "acme")
    register_client(engine, vault, "hubspot", SIM_CLIENT_ID, SecretStr(SIM_CLIENT_SECRET))
    with serve_in_thread(sim.app) as sim_url:
        settings = Settings(  # the operator points HubSpot's sign-in at the simulator
            home=tmp_path, oauth_redirect_url="http://inlet.test/oauth/callback", oauth_endpoints={"hubspot": sim_url}
        )
        clock = lambda: time.time() + skew["seconds"]  # noqa: E731  # a clock the tests move
        receiver = create_receiver(engine, vault, lambda tenant, connection: None, clock=clock, settings=settings)
        with serve_in_thread(receiver) as receiver_url:
            yield OAuthWorld(engine, vault, settings, sim.oauth, sim_url, receiver_url, skew)


def test_callback_exchanges_the_code_and_stores_tokens_encrypted(world: OAuthWorld) -> None:
    answer = world.callback(**world.consent())
    assert answer.status_code == 200 and "Connected" in answer.text
    row = read_tokens(world.engine, world.vault, "acme-hubspot")
    assert row is not None and row.status == "active" and row.tokens.refresh_token is not None
    access = row.tokens.access_token.get_secret_value()
    with world.engine.connect() as db:
        stored = db.execute(text("SELECT tokens_encrypted FROM oauth_token")).scalar_one()
        secret = db.execute(text("SELECT client_secret_encrypted FROM oauth_client")).scalar_one()
    assert access.encode() not in bytes(stored) and SIM_CLIENT_SECRET.encode() not in bytes(secret)
    assert access not in answer.text and access not in repr(row) and "tokens=***" in repr(row)


def test_a_used_state_is_refused_and_stores_nothing_new(world: OAuthWorld) -> None:
    grant = world.consent()
    assert world.callback(**grant).status_code == 200
    version = read_tokens(world.engine, world.vault, "acme-hubspot")
    again = world.callback(**grant)
    assert again.status_code == 400 and "already used" in again.text
    assert read_tokens(world.engine, world.vault, "acme-hubspot") == version


@pytest.mark.parametrize("tamper", ["forged", "altered", "empty"])
def test_a_forged_state_is_refused_and_nothing_is_stored(world: OAuthWorld, tamper: str) -> None:
    grant = world.consent()
    forged = Vault(SecretStr(Fernet.generate_key().decode())).seal({"n": "x", "t": "acme", "c": "c", "a": "hubspot"})
    state = {"forged": forged.decode(), "altered": grant["state"][:-6] + "AAAAAA", "empty": ""}[tamper]
    answer = world.callback(code=grant["code"], state=state)
    assert answer.status_code == 400
    assert read_tokens(world.engine, world.vault, "acme-hubspot") is None
    assert world.oauth.counts["authorization_code"] == 0


def test_an_expired_state_is_refused(world: OAuthWorld) -> None:
    grant = world.consent()
    world.skew["seconds"] = world.settings.oauth_state_ttl_seconds + 5
    answer = world.callback(**grant)
    assert answer.status_code == 400 and "expired" in answer.text
    assert read_tokens(world.engine, world.vault, "acme-hubspot") is None


def test_a_denied_consent_stores_nothing(world: OAuthWorld) -> None:
    grant = world.consent()
    answer = world.callback(error="access_denied", state=grant["state"])
    assert answer.status_code == 400 and "access_denied" in answer.text
    assert read_tokens(world.engine, world.vault, "acme-hubspot") is None


def test_the_loser_of_a_refresh_race_does_not_overwrite_the_newer_token(world: OAuthWorld) -> None:
    world.connected()
    start = read_tokens(world.engine, world.vault, "acme-hubspot")
    assert start is not None
    winner, loser = (TokenSet(access_token=SecretStr(f"{name}-token")) for name in ("winner", "loser"))
    assert swap_tokens(world.engine, world.vault, "acme-hubspot", start.version, winner)
    assert not swap_tokens(world.engine, world.vault, "acme-hubspot", start.version, loser)
    now = read_tokens(world.engine, world.vault, "acme-hubspot")
    assert now is not None and now.tokens.access_token.get_secret_value() == "winner-token"
    assert now.version == start.version + 1


async def test_two_runs_in_one_process_refresh_once(world: OAuthWorld) -> None:
    world.connected()
    world.oauth.configure(token_delay=0.3)
    first, second = world.source(clock_offset=10_000), world.source(clock_offset=10_000)  # both see it expiring
    tokens = await asyncio.gather(first.access_token(), second.access_token(), first.access_token())
    assert world.oauth.counts["refresh_token"] == 1 and len(set(tokens)) == 1
    assert world.oauth.accepts(f"Bearer {tokens[0]}")


def test_two_runs_in_two_threads_refresh_once_through_the_store_lease(world: OAuthWorld) -> None:
    world.connected()
    world.oauth.configure(token_delay=0.3)
    got: list[str] = []

    def run() -> None:  # each thread has its own event loop, like a run on another worker
        got.append(asyncio.run(world.source(clock_offset=10_000).access_token()))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 3 and len(set(got)) == 1
    assert world.oauth.counts["refresh_token"] == 1


async def test_a_401_refreshes_once_even_before_the_stated_expiry(world: OAuthWorld) -> None:
    world.connected()
    source = world.source()
    stale = await source.access_token()
    world.oauth.expire_access_tokens()
    fresh = await source.refreshed(stale)
    assert fresh != stale and world.oauth.accepts(f"Bearer {fresh}")
    assert await source.refreshed(stale) == fresh and world.oauth.counts["refresh_token"] == 1


async def test_a_revoked_grant_marks_the_connection_and_later_runs_do_not_call_the_token_endpoint(
    world: OAuthWorld,
) -> None:
    world.connected()
    world.oauth.revoke_all()
    with pytest.raises(NeedsReauth, match="connect again"):
        await world.source(clock_offset=10_000).access_token()
    assert world.oauth.counts["refused"] == 1
    row = read_tokens(world.engine, world.vault, "acme-hubspot")
    assert row is not None and row.status == "needs_reauth" and "BAD_REFRESH_TOKEN" in (row.status_reason or "")
    loaded = load_connection(world.engine, world.vault, "acme", "acme-hubspot")
    for _ in range(3):  # the next scheduled runs
        with pytest.raises(NeedsReauth):
            oauth_auth(world.engine, world.vault, world.settings, loaded)
    assert world.oauth.counts["refused"] == 1 and world.oauth.counts["refresh_token"] == 0
    assert connection_status(world.engine)[0]["auth"] == "oauth:needs_reauth"


def test_connecting_again_clears_needs_reauth(world: OAuthWorld) -> None:
    world.connected()
    row = read_tokens(world.engine, world.vault, "acme-hubspot")
    assert row is not None
    from inlet.oauth import mark_needs_reauth

    assert mark_needs_reauth(world.engine, "acme-hubspot", row.version, "revoked")
    world.connected()
    again = read_tokens(world.engine, world.vault, "acme-hubspot")
    assert again is not None and again.status == "active" and again.version == row.version + 1


def test_saved_tokens_round_trip(world: OAuthWorld) -> None:
    world.connected()
    tokens = TokenSet(access_token=SecretStr("a"), refresh_token=SecretStr("r"), expires_at=5.0, lifetime=60)
    version = save_tokens(world.engine, world.vault, "acme-hubspot", "authorization_code", tokens)
    row = read_tokens(world.engine, world.vault, "acme-hubspot")
    assert row is not None and row.version == version and row.tokens == tokens


async def test_an_app_only_token_is_renewed_with_the_client_credentials(engine: Engine, tmp_path: Path) -> None:
    vault = Vault(SecretStr(Fernet.generate_key().decode()))
    sim = make_simulator("msgraph", 3)
    assert sim.oauth is not None
    add_tenant(engine, "acme")
    register_client(engine, vault, "msgraph", SIM_CLIENT_ID, SecretStr(SIM_CLIENT_SECRET))
    with serve_in_thread(sim.app) as url:
        settings = Settings(home=tmp_path, oauth_endpoints={"msgraph": url})
        params = {"base_url": url, "login_url": url, "directory": "contoso.onmicrosoft.com"}
        async with httpx.AsyncClient() as http:
            await connect_app_only(
                engine,
                vault,
                settings,
                tenant_id="acme",
                app="msgraph",
                connection_id="g",
                parameters=params,
                http=http,
            )
        loaded = load_connection(engine, vault, "acme", "g")
        auth = oauth_auth(engine, vault, settings, loaded)
        assert auth is not None
        policy = settings.egress.policy()
        async with open_connector(
            "msgraph", parameters=loaded.connection.parameters, auth=auth, egress=policy
        ) as connector:
            sim.oauth.expire_access_tokens()
            assert len([r async for page in connector.pages("users") for r in page.records]) == 3
    assert sim.oauth.counts["client_credentials"] == 2 and sim.oauth.counts["refresh_token"] == 0


def test_the_receiver_serves_the_consent_url_behind_a_reusable_connect_link(world: OAuthWorld) -> None:
    world.consent()  # creates the connection with its parameters
    link = connect_link(world.vault, world.settings, tenant_id="acme", app="hubspot", connection_id="acme-hubspot")
    path = urlsplit(link)
    served = [httpx.get(f"{world.receiver_url}{path.path}?{path.query}", timeout=10) for _ in range(2)]
    assert [answer.status_code for answer in served] == [302, 302]
    states = [parse_qs(urlsplit(answer.headers["location"]).query)["state"][0] for answer in served]
    assert states[0] != states[1]  # each opening mints its own single-use state
    consent = httpx.get(served[1].headers["location"], timeout=10)
    grant = parse_qs(urlsplit(consent.headers["location"]).query)
    assert world.callback(code=grant["code"][0], state=grant["state"][0]).status_code == 200


@pytest.mark.parametrize("case", ["forged", "a state", "expired"])
def test_a_bad_connect_link_is_refused(world: OAuthWorld, case: str) -> None:
    state = world.consent()["state"]
    link = connect_link(world.vault, world.settings, tenant_id="acme", app="hubspot", connection_id="acme-hubspot")
    sealed = {"forged": state[:-4] + "AAAA", "a state": state, "expired": parse_qs(urlsplit(link).query)["link"][0]}
    if case == "expired":
        world.skew["seconds"] = world.settings.oauth_link_ttl_seconds + 5
    answer = httpx.get(f"{world.receiver_url}/oauth/start", params={"link": sealed[case]}, timeout=10)
    assert answer.status_code == 400 and "location" not in answer.headers


def test_issuing_a_state_purges_states_too_old_to_open(world: OAuthWorld) -> None:
    from datetime import timedelta

    from sqlmodel import Session, select

    from inlet.store import OAuthState, utcnow

    with Session(world.engine) as session:
        old = utcnow() - timedelta(seconds=world.settings.oauth_state_ttl_seconds * 3)
        session.add(OAuthState(nonce="old", tenant_id="acme", connection_id="c", app="hubspot", created_at=old))
        session.commit()
    world.consent()
    with Session(world.engine) as session:
        assert [s.nonce != "old" for s in session.exec(select(OAuthState))] == [True]
