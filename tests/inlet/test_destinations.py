"""Destinations: the default and a tenant's own, secret rotation, bearer and OAuth2 auth, against the demo app."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from inlet.delivery import (
    BearerToken,
    ClientCredentials,
    Destination,
    destination_for,
    drain,
    generate_secret,
    retire_secret,
    rotate_secret,
    set_destination,
)
from inlet.errors import ConfigError
from inlet.local import free_port, local_client, start_process, stop_process
from inlet.service import initialise
from inlet.settings import Settings
from inlet.store import MappedRecord, PageScope, add_tenant, open_store, outbox, utcnow, write_page

SCOPE = PageScope("acme", "acme-hubspot", "users", generation="gen-1", run_id="run-1")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    made = Settings(home=tmp_path / "home")
    initialise(made)
    return made


@pytest.fixture
def store(settings: Settings) -> Engine:
    engine = open_store(settings.store_url)
    add_tenant(engine, "acme")
    return engine


@pytest.fixture
def oauth_app(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A demo app that wants OAuth2 tokens from client `inlet` / `s3cret`; (base URL, signing secret)."""
    secret, port = generate_secret(), free_port()
    cmd = [sys.executable, "-m", "inlet.demo.app", "--port", str(port), "--db", str(tmp_path / "app.db")]
    cmd += ["--secret", secret, "--oauth-client", "inlet:s3cret"]
    proc = start_process(cmd, f"http://127.0.0.1:{port}/health", log_path=tmp_path / "app.log")
    yield f"http://127.0.0.1:{port}", secret
    stop_process(proc)


def test_a_tenant_without_an_override_gets_the_default(settings: Settings, store: Engine) -> None:
    assert destination_for(store, settings, "acme") == Destination.from_settings(settings)


def test_a_tenant_override_has_its_own_url_and_secret(settings: Settings, store: Engine) -> None:
    created = set_destination(store, settings, "acme", url="https://acme.example/", bearer_token=SecretStr("tok"))
    mine = destination_for(store, settings, "acme")
    assert created is not None and [s.get_secret_value() for s in mine.secrets] == [created]
    assert (mine.url, mine.path, mine.batch_size) == ("https://acme.example", "/inlet/events", 500)
    assert created not in repr(mine) and "tok" not in repr(mine.auth)


def test_rotating_the_default_signs_with_both_until_the_old_is_retired(settings: Settings, store: Engine) -> None:
    old = Destination.from_settings(settings).secrets[0].get_secret_value()
    new = rotate_secret(store, settings)
    assert [s.get_secret_value() for s in Destination.from_settings(settings).secrets] == [new, old]
    with pytest.raises(ConfigError, match="retire the old secret first"):
        rotate_secret(store, settings)
    assert retire_secret(store, settings) and not retire_secret(store, settings)
    assert [s.get_secret_value() for s in Destination.from_settings(settings).secrets] == [new]


def test_rotating_a_tenant_secret(settings: Settings, store: Engine) -> None:
    first = set_destination(store, settings, "acme", url="https://acme.example")
    new = rotate_secret(store, settings, "acme")
    assert [s.get_secret_value() for s in destination_for(store, settings, "acme").secrets] == [new, first]
    assert retire_secret(store, settings, "acme")
    assert [s.get_secret_value() for s in destination_for(store, settings, "acme").secrets] == [new]


def test_a_secret_set_in_the_environment_is_not_rotated_by_the_cli(tmp_path: Path, store: Engine) -> None:
    pinned = Settings(home=tmp_path / "home", destination={"secret": SecretStr(generate_secret())})
    with pytest.raises(ConfigError, match="INLET_DESTINATION__PREVIOUS_SECRET"):
        rotate_secret(store, pinned)


async def test_oauth2_token_is_fetched_and_refreshed_after_a_401(
    sqlite_engine: Engine, oauth_app: tuple[str, str]
) -> None:
    url, secret = oauth_app
    auth = ClientCredentials(url + "/oauth/token", "inlet", SecretStr("s3cret"))
    destination = Destination(url=url, path="/inlet/events", secrets=(SecretStr(secret),), auth=auth)
    async with httpx.AsyncClient(trust_env=False) as client:
        write_page(sqlite_engine, SCOPE, [MappedRecord("1", {"email": "a@x"}, None)], next_request=None)
        assert (await drain(sqlite_engine, "acme-hubspot", destination, client)).delivered == 1
        with local_client(base_url=url) as admin:
            admin.post("/_demo/faults", json={"revoke_tokens": True}).raise_for_status()
        write_page(
            sqlite_engine,
            replace(SCOPE, generation="gen-2"),
            [MappedRecord("1", {"email": "b@x"}, None)],
            next_request=None,
        )
        assert (await drain(sqlite_engine, "acme-hubspot", destination, client)).delivered == 1
    assert auth.fetches == 2


async def test_a_wrong_oauth2_client_keeps_the_events_pending(
    sqlite_engine: Engine, oauth_app: tuple[str, str]
) -> None:
    url, secret = oauth_app
    auth = ClientCredentials(url + "/oauth/token", "inlet", SecretStr("wrong"))
    destination = Destination(url=url, path="/inlet/events", secrets=(SecretStr(secret),), auth=auth, max_attempts=1)
    write_page(sqlite_engine, SCOPE, [MappedRecord("1", {"email": "a@x"}, None)], next_request=None)
    async with httpx.AsyncClient(trust_env=False) as client:
        result = await drain(sqlite_engine, "acme-hubspot", destination, client)
    assert result.pending_left and result.last_error is not None and "without an access_token" in result.last_error
    assert "wrong" not in result.last_error and outbox.counts(sqlite_engine).pending == 1


async def test_a_batch_older_than_the_max_age_becomes_a_dead_letter_with_the_last_error(sqlite_engine: Engine) -> None:
    nowhere = Destination(url=f"http://127.0.0.1:{free_port()}", path="/e", secrets=(SecretStr(generate_secret()),))
    write_page(sqlite_engine, SCOPE, [MappedRecord("1", {"email": "a@x"}, None)], next_request=None)
    four_days_on = utcnow() + timedelta(days=4)
    async with httpx.AsyncClient(trust_env=False) as client:
        result = await drain(
            sqlite_engine,
            "acme-hubspot",
            nowhere.model_copy(update={"max_attempts": 1}),
            client,
            clock=lambda: four_days_on,
        )
    (dead,) = outbox.entries(sqlite_engine, "dead")
    assert result.dead == 1 and dead.last_error is not None and "max age" in dead.last_error
    assert "is the app up?" in dead.last_error


def test_the_default_destination_takes_a_bearer_token_or_oauth2_from_settings(tmp_path: Path) -> None:
    secret = SecretStr(generate_secret())
    bearer = Settings(home=tmp_path, destination={"secret": secret, "bearer_token": SecretStr("tok")})
    oauth = Settings(
        home=tmp_path,
        destination={
            "secret": secret,
            "oauth_token_url": "https://id.example/token",
            "oauth_client_id": "inlet",
            "oauth_client_secret": SecretStr("s3cret"),
        },
    )
    assert isinstance(Destination.from_settings(bearer).auth, BearerToken)
    auth = Destination.from_settings(oauth).auth
    assert isinstance(auth, ClientCredentials) and "s3cret" not in repr(auth)
