"""`inlet api-keys create|list|revoke` and `inlet connect-sessions create` on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.cli import app
from inlet.service import authenticate, open_installation
from inlet.settings import get_settings
from tests.support.tables import table_rows

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    assert invoke("init")[0] == 0 and invoke("tenants", "add", "acme")[0] == 0
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_a_key_is_printed_once_listed_without_it_and_revoked() -> None:
    code, out = invoke("api-keys", "create", "--name", "backend", "--scope", "write")
    key = out.splitlines()[-1]
    assert code == 0 and key.startswith("ik_")
    inst = open_installation(get_settings())
    assert authenticate(inst, key).scopes == {"read", "write"}
    key_id = key.split("_")[1]
    listing = invoke("api-keys", "list")[1]
    (row,) = table_rows(listing)
    assert (row["id"], row["name"], row["scopes"], row["revoked"]) == (key_id, "backend", "write", "-")
    assert key not in listing
    assert invoke("api-keys", "revoke", key_id) == (0, f"API key {key_id} revoked\n")
    (row,) = table_rows(invoke("api-keys", "list")[1])
    assert "UTC (" in row["revoked"]
    assert invoke("api-keys", "revoke", key_id)[0] == 2


def test_an_unknown_scope_is_refused() -> None:
    code, out = invoke("api-keys", "create", "--name", "x", "--scope", "root")
    assert code == 2 and "scopes must be some of" in out


def test_a_connect_session_link_is_printed_for_a_tenant() -> None:
    code, out = invoke("connect-sessions", "create", "-t", "acme", "--connector", "hubspot", "-p", "hubspot.base_url=x")
    assert code == 0 and "/pages/cs_" in out and out.rstrip().endswith("/connect")
    code, out = invoke("connect-sessions", "create", "-t", "acme", "--connector", "nosuch")
    assert code == 2 and "no connector 'nosuch'" in out
