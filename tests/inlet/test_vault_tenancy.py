"""Credentials encrypted at rest, and tenants that can reach only their own connections."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, select

from inlet.errors import ConfigError, NotFound
from inlet.settings import Settings
from inlet.store import (
    Connection,
    Vault,
    add_connection,
    add_tenant,
    ensure_key_file,
    list_connections,
    list_tenants,
    load_connection,
)

TOKEN = "pat-na1-5ecret-t0ken-value"
CREDENTIALS = {"token": SecretStr(TOKEN)}


@pytest.fixture
def vault() -> Vault:
    return Vault(SecretStr(Fernet.generate_key().decode()))


@pytest.fixture
def tenants(engine: Engine, vault: Vault) -> Engine:
    """Two tenants, acme and globex, each with one HubSpot connection."""
    for tenant in ("acme", "globex"):
        add_tenant(engine, tenant, tenant.title())
        connect(engine, vault, tenant, f"{tenant}-hubspot", credentials={"token": SecretStr(f"{TOKEN}-{tenant}")})
    return engine


def connect(engine: Engine, vault: Vault, tenant: str, connection_id: str, **options: Any) -> Connection:
    """add_connection for a HubSpot connection unless `app=` says otherwise."""
    options = {"app": "hubspot", "parameters": {}, "credentials": {}} | options
    return add_connection(engine, vault, tenant_id=tenant, connection_id=connection_id, **options)


def stored_credentials(engine: Engine, connection_id: str) -> bytes:
    table = Connection.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__
    with engine.connect() as db:
        query = select(table.c.credentials_encrypted).where(table.c.id == connection_id)
        value: bytes = db.execute(query).scalar_one()
    return value


def test_credentials_round_trip_and_are_encrypted_at_rest(tenants: Engine, vault: Vault) -> None:
    loaded = load_connection(tenants, vault, "acme", "acme-hubspot")
    assert loaded.credentials["token"].get_secret_value() == f"{TOKEN}-acme"
    raw = stored_credentials(tenants, "acme-hubspot")
    assert raw and TOKEN.encode() not in raw and b"token" not in raw


def test_a_wrong_key_is_a_config_error(tenants: Engine) -> None:
    other = Vault(SecretStr(Fernet.generate_key().decode()))
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        load_connection(tenants, other, "acme", "acme-hubspot")


def test_no_stored_credentials_decrypt_to_nothing(vault: Vault) -> None:
    assert vault.decrypt(None) == {} and vault.decrypt(b"") == {}


@pytest.mark.parametrize(("tenant", "connection"), [("globex", "acme-hubspot"), ("acme", "globex-hubspot")])
def test_another_tenants_connection_is_not_found(tenants: Engine, vault: Vault, tenant: str, connection: str) -> None:
    with pytest.raises(NotFound, match=f"tenant {tenant!r} has no connection {connection!r}"):
        load_connection(tenants, vault, tenant, connection)


def test_unknown_tenant_is_not_found(tenants: Engine, vault: Vault) -> None:
    with pytest.raises(NotFound, match="no tenant 'initech'"):
        load_connection(tenants, vault, "initech", "acme-hubspot")


@pytest.mark.parametrize(
    ("app", "parameters", "data_source", "message"),
    [
        ("nosuchapp", {}, "users", "no connector 'nosuchapp'"),
        ("json_server", {}, "users", r"needs --param for \['base_url'\]"),
        ("hubspot", {"region": "eu"}, "users", r"has no parameters \['region'\]"),
        ("hubspot", {}, "deals", "no collection for the data source 'deals'"),
    ],
)
def test_bad_connection_is_a_config_error(
    tenants: Engine, vault: Vault, app: str, parameters: dict[str, str], data_source: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        connect(tenants, vault, "acme", "acme-new", app=app, parameters=parameters, data_source=data_source)


def test_connection_needs_an_existing_tenant(engine: Engine, vault: Vault) -> None:
    with pytest.raises(NotFound, match="no tenant 'acme'"):
        connect(engine, vault, "acme", "acme-hubspot")


@pytest.mark.parametrize(("tenant", "replace"), [("acme", False), ("globex", True)])
def test_existing_connection_is_not_overwritten(tenants: Engine, vault: Vault, tenant: str, replace: bool) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        connect(tenants, vault, tenant, "acme-hubspot", credentials={"token": SecretStr("stolen")}, replace=replace)
    assert load_connection(tenants, vault, "acme", "acme-hubspot").credentials["token"].get_secret_value() != "stolen"


def test_replace_updates_the_tenants_own_connection(tenants: Engine, vault: Vault) -> None:
    parameters = {"base_url": "http://127.0.0.1:8410"}
    connect(
        tenants,
        vault,
        "acme",
        "acme-hubspot",
        parameters=parameters,
        credentials={"token": SecretStr("new")},
        replace=True,
    )
    loaded = load_connection(tenants, vault, "acme", "acme-hubspot")
    assert loaded.connection.parameters == {"base_url": "http://127.0.0.1:8410"}
    assert loaded.credentials["token"].get_secret_value() == "new"


def test_replacing_a_connections_credentials_forgets_its_oauth_tokens(tenants: Engine, vault: Vault) -> None:
    from sqlmodel import Session

    from inlet.store import OAuthToken

    with Session(tenants) as session:
        session.add(OAuthToken(connection_id="acme-hubspot", grant="authorization_code", tokens_encrypted=b"x"))
        session.commit()
    connect(tenants, vault, "acme", "acme-hubspot", credentials={"token": SecretStr("pasted")}, replace=True)
    with Session(tenants) as session:
        assert session.get(OAuthToken, "acme-hubspot") is None


def test_tenants_and_connections_are_listed_per_tenant(tenants: Engine) -> None:
    assert [t.id for t in list_tenants(tenants)] == ["acme", "globex"]
    assert [c.id for c in list_connections(tenants, "globex")] == ["globex-hubspot"]
    assert [c.id for c in list_connections(tenants)] == ["acme-hubspot", "globex-hubspot"]


def test_duplicate_or_malformed_tenant_is_refused(tenants: Engine) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        add_tenant(tenants, "acme")
    with pytest.raises(ConfigError, match="must start with a lowercase letter"):
        add_tenant(tenants, "../globex")


def test_reprs_show_no_secret(tenants: Engine, vault: Vault) -> None:
    loaded = load_connection(tenants, vault, "acme", "acme-hubspot")
    for text in (repr(loaded), str(loaded), repr(vault), repr(loaded.connection), repr(loaded.credentials)):
        assert TOKEN not in text
    assert "***" in repr(loaded) and repr(vault) == "Vault(***)"


def test_vault_from_settings_prefers_the_setting(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    vault = Vault.from_settings(Settings(home=tmp_path, secret_key=SecretStr(key)))
    assert Vault(SecretStr(key)).decrypt(vault.encrypt(CREDENTIALS))["token"].get_secret_value() == TOKEN


def test_vault_from_settings_reads_the_key_file(tmp_path: Path) -> None:
    assert ensure_key_file(tmp_path / "secret.key") is True
    assert ensure_key_file(tmp_path / "secret.key") is False
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    vault = Vault.from_settings(Settings(home=tmp_path))
    assert vault.decrypt(vault.encrypt(CREDENTIALS))["token"].get_secret_value() == TOKEN


def test_vault_without_a_key_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inlet init"):
        Vault.from_settings(Settings(home=tmp_path))
