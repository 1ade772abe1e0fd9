"""`inlet connections add` checks the credentials with one read-only request before saving (issue 17), and
`inlet connections update` changes some parameters or credentials without `--replace`; against a HubSpot
simulator running as its own process on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.cli import app
from inlet.local import free_port, start_process, stop_process
from inlet.settings import get_settings
from inlet.store import Vault, load_connection, open_store

TOKEN = "pat-na1-check-4b1d"
runner = CliRunner()


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "connectors.hubspot.simulator", "--port", str(port), "--records", "3"]
    proc = start_process(
        [*command, "--token", TOKEN], f"http://127.0.0.1:{port}/_sim/stats", log_path=tmp_path / "sim.log"
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    assert invoke("init")[0] == 0 and invoke("tenants", "add", "acme")[0] == 0
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def add(url: str, token: str, *extra: str) -> tuple[int, str]:
    return invoke(
        "connections", "add", "-t", "acme", "--id", "acme-hs", "--app", "hubspot",
        "--param", f"base_url={url}", "--credential", f"token={token}", *extra,
    )  # fmt: skip


def stored() -> tuple[dict[str, str], str]:
    settings = get_settings()
    loaded = load_connection(open_store(settings.store_url), Vault.from_settings(settings), "acme", "acme-hs")
    return dict(loaded.connection.parameters), loaded.credentials["token"].get_secret_value()


def test_add_refuses_wrong_credentials_and_saves_nothing(simulator: str) -> None:
    code, out = add(simulator, "pat-na1-wrong")
    assert code == 2 and "HubSpot CRM refused these credentials" in out and "nothing was saved" in out
    assert "pat-na1-wrong" not in out
    assert "acme-hs" not in invoke("connections", "list", "-t", "acme")[1]


def test_add_refuses_an_address_that_does_not_answer(simulator: str) -> None:
    code, out = add("http://127.0.0.1:9", TOKEN)
    assert code == 2 and "could not check the credentials with HubSpot" in out and "nothing was saved" in out
    assert "acme-hs" not in invoke("connections", "list", "-t", "acme")[1]


def test_add_saves_checked_credentials_and_no_check_skips_the_request(simulator: str) -> None:
    assert add(simulator, TOKEN)[0] == 0 and stored() == ({"base_url": simulator}, TOKEN)
    code, out = add(simulator, "pat-na1-unchecked", "--no-check", "--replace")
    assert code == 0 and stored()[1] == "pat-na1-unchecked"


def test_update_changes_only_what_is_given_after_the_check(simulator: str) -> None:
    assert add(simulator, TOKEN)[0] == 0
    code, out = invoke("connections", "update", "-t", "acme", "-c", "acme-hs", "--credential", "token=pat-na1-bad")
    assert code == 2 and "refused these credentials" in out and stored() == ({"base_url": simulator}, TOKEN)
    code, out = invoke("connections", "update", "-t", "acme", "-c", "acme-hs", "--param", "base_url=http://127.0.0.1:9")
    assert code == 2 and "could not check" in out and stored()[0] == {"base_url": simulator}
    code, out = invoke(
        "connections", "update", "-t", "acme", "-c", "acme-hs", "--param", "base_url=http://127.0.0.1:9", "--no-check"
    )
    assert code == 0 and "updated: base_url" in out and stored() == ({"base_url": "http://127.0.0.1:9"}, TOKEN)
    code, out = invoke("connections", "update", "-t", "acme", "-c", "acme-hs", "--param", f"base_url={simulator}")
    assert code == 0 and stored() == ({"base_url": simulator}, TOKEN)


def test_update_with_nothing_to_change_says_so() -> None:
    assert add("http://127.0.0.1:9", TOKEN, "--no-check")[0] == 0
    code, out = invoke("connections", "update", "-t", "acme", "-c", "acme-hs")
    assert code == 2 and "nothing to change" in out
