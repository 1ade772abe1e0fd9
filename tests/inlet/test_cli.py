"""The CLI: set-up, tenants and connections, and clear errors with non-zero exit codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.cli import app
from tests.support.tables import table_rows

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    assert runner.invoke(app, ["init"]).exit_code == 0
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_init_creates_keys_readable_only_by_the_owner(home: Path) -> None:
    assert (home / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (home / "destination.secret").read_text().startswith("whsec_")


def test_tenants_and_connections_round_trip_without_showing_credentials() -> None:
    assert invoke("tenants", "add", "acme", "--name", "Acme")[0] == 0
    code, _ = invoke(
        "connections",
        "add",
        "-t",
        "acme",
        "--id",
        "acme-hs",
        "--app",
        "hubspot",
        "--credential",
        "token=pat-na1-very-secret",
        "--no-check",
    )
    listing = invoke("connections", "list")[1]
    assert code == 0 and "acme-hs" in listing and "pat-na1-very-secret" not in listing


def test_import_for_an_unknown_tenant_says_so_and_exits_2() -> None:
    code, output = invoke("import", "full", "-t", "nobody", "-c", "nothing")
    assert code == 2 and "no tenant 'nobody'" in output


def test_import_for_another_tenants_connection_is_not_found() -> None:
    invoke("tenants", "add", "acme")
    invoke("tenants", "add", "globex")
    invoke(
        "connections",
        "add",
        "-t",
        "acme",
        "--id",
        "acme-hs",
        "--app",
        "hubspot",
        "--credential",
        "token=x",
        "--no-check",
    )
    code, output = invoke("import", "full", "-t", "globex", "-c", "acme-hs")
    assert code == 2 and "tenant 'globex' has no connection 'acme-hs'" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--app", "nosuchapp"), "no connector 'nosuchapp'"),
        (("--app", "kinto"), "kinto needs --param for ['base_url']"),
        (("--app", "hubspot", "--param", "region=eu"), "hubspot has no parameters ['region']"),
        (("--app", "hubspot", "--param", "oops"), "is not name=value"),
    ],
)
def test_bad_connection_input_is_refused_with_a_reason(args: tuple[str, ...], message: str) -> None:
    invoke("tenants", "add", "acme")
    code, output = invoke("connections", "add", "-t", "acme", "--id", "c1", *args)
    assert code == 2 and message in output


def test_connection_for_a_missing_tenant_is_refused() -> None:
    code, output = invoke("connections", "add", "-t", "ghost", "--id", "c1", "--app", "hubspot")
    assert code == 2 and "no tenant 'ghost'" in output


def test_credentials_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HS_TOKEN", "pat-from-env")
    invoke("tenants", "add", "acme")
    code, _ = invoke(
        "connections",
        "add",
        "-t",
        "acme",
        "--id",
        "c1",
        "--app",
        "hubspot",
        "--credential",
        "token=env:HS_TOKEN",
        "--no-check",
    )
    (row,) = table_rows(invoke("connections", "list", "-t", "acme")[1])
    assert code == 0 and (row["tenant"], row["connection"], row["app"]) == ("acme", "c1", "hubspot")


def test_status_lists_each_connection() -> None:
    invoke("tenants", "add", "acme")
    invoke(
        "connections", "add", "-t", "acme", "--id", "c1", "--app", "hubspot", "--credential", "token=x", "--no-check"
    )
    code, output = invoke("status")
    assert code == 0 and "acme / c1 (hubspot)" in output
    assert re.search(r"^last full import +never\s*$", output, re.MULTILINE), output
    assert re.search(r"^poll every +5 min\s*$", output, re.MULTILINE), output
