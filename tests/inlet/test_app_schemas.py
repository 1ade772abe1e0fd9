"""App schemas fetched from the team's app (the demo app over loopback), signed, cached with a TTL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine

from inlet.delivery import generate_secret
from inlet.demo import USERS_SCHEMA, create_demo_app
from inlet.errors import ConfigError
from inlet.mapping import fetch_schema, schema_for
from inlet.settings import AppSchemaSettings, DestinationSettings, Settings
from mappings import TemplateError
from tests.support.serving import serve_in_thread

SECRET = generate_secret()
CUSTOM = {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(create_demo_app(tmp_path / "app.db", [SECRET])) as url:
        yield url


def settings_for(tmp_path: Path, url: str, *, ttl: float = 3600, secret: str = SECRET) -> Settings:
    return Settings(
        home=tmp_path / "home",
        secret_key=SecretStr(Fernet.generate_key().decode()),
        destination=DestinationSettings(url=url, secret=SecretStr(secret), timeout_seconds=5),
        app_schema=AppSchemaSettings(source="app", ttl_seconds=ttl),
    )


def fetches(url: str) -> int:
    return int(httpx.get(url + "/_demo/schemas").json()["fetches"])


def test_schema_is_fetched_signed_and_cached(sqlite_engine: Engine, tmp_path: Path, app_url: str) -> None:
    settings = settings_for(tmp_path, app_url)
    first = schema_for(sqlite_engine, settings, "acme", "users")
    second = schema_for(sqlite_engine, settings, "acme", "users")
    assert first is not None and second is not None
    assert first.document == USERS_SCHEMA == second.document and fetches(app_url) == 1


def test_refresh_and_an_expired_ttl_fetch_again(sqlite_engine: Engine, tmp_path: Path, app_url: str) -> None:
    schema_for(sqlite_engine, settings_for(tmp_path, app_url), "acme", "users")
    schema_for(sqlite_engine, settings_for(tmp_path, app_url), "acme", "users", refresh=True)
    schema_for(sqlite_engine, settings_for(tmp_path, app_url, ttl=0), "acme", "users")
    assert fetches(app_url) == 3


def test_each_tenant_gets_its_own_schema(sqlite_engine: Engine, tmp_path: Path, app_url: str) -> None:
    httpx.post(app_url + "/_demo/schemas", json={"tenant": "acme", "schema": CUSTOM}).raise_for_status()
    settings = settings_for(tmp_path, app_url)
    acme = schema_for(sqlite_engine, settings, "acme", "users")
    globex = schema_for(sqlite_engine, settings, "globex", "users")
    assert acme is not None and globex is not None
    assert acme.document == CUSTOM and globex.document == USERS_SCHEMA


def test_a_wrong_signing_secret_is_refused_by_the_app(sqlite_engine: Engine, tmp_path: Path, app_url: str) -> None:
    settings = settings_for(tmp_path, app_url, secret=generate_secret())
    with pytest.raises(ConfigError, match="the app answered 401 for the schema of tenant 'acme'") as caught:
        fetch_schema(sqlite_engine, settings, "acme", "users")
    assert SECRET not in str(caught.value)


def test_the_cached_copy_serves_while_the_app_is_down(sqlite_engine: Engine, tmp_path: Path) -> None:
    with serve_in_thread(create_demo_app(tmp_path / "app.db", [SECRET])) as url:
        schema_for(sqlite_engine, settings_for(tmp_path, url), "acme", "users")
    down = settings_for(tmp_path, url, ttl=0)
    cached = schema_for(sqlite_engine, down, "acme", "users")
    assert cached is not None and cached.document == USERS_SCHEMA
    with pytest.raises(ConfigError, match="cannot fetch the app schema of tenant 'globex'"):
        schema_for(sqlite_engine, down, "globex", "users")


def test_an_unknown_data_source_is_a_clear_error(sqlite_engine: Engine, tmp_path: Path, app_url: str) -> None:
    with pytest.raises(ConfigError, match="answered 404"):
        fetch_schema(sqlite_engine, settings_for(tmp_path, app_url), "acme", "deals")


def test_static_schema_comes_from_the_schemas_folder(sqlite_engine: Engine, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert schema_for(sqlite_engine, settings, "acme", "users") is None
    (tmp_path / "home" / "schemas").mkdir(parents=True)
    (tmp_path / "home" / "schemas" / "users.yaml").write_text("type: object\nrequired: [email]\n")
    schema = schema_for(sqlite_engine, settings, "acme", "users")
    assert schema is not None and schema.required == ["email"]
    (tmp_path / "home" / "schemas" / "users.yaml").write_text("type: 12\n")
    with pytest.raises(TemplateError, match="not a valid JSON Schema"):
        schema_for(sqlite_engine, settings, "acme", "users")
