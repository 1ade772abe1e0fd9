"""`inlet oauth clients`, `inlet connections connect|show` and `inlet status` with OAuth connections."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from connectors.registry import make_simulator
from connectors.simulation import SIM_CLIENT_ID, SIM_CLIENT_SECRET, SimulatorBase
from inlet.cli import app
from inlet.oauth import read_tokens
from inlet.receiver import create_receiver
from inlet.settings import get_settings
from inlet.store import Vault, open_store
from tests.support.serving import serve_in_thread
from tests.support.tables import table_rows

runner = CliRunner()
SIMULATORS: dict[str, SimulatorBase] = {}


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def sims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An inlet home with tenant acme, the receiver, and HubSpot, Salesforce and Graph simulators."""
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SIM_SECRET", SIM_CLIENT_SECRET)
    apps = ("hubspot", "salesforce", "msgraph")
    hubspot_sim = make_simulator("hubspot", 3)
    with (
        serve_in_thread(hubspot_sim.app) as hubspot,
        serve_in_thread(make_simulator("salesforce", 3).app) as salesforce,
        serve_in_thread(make_simulator("msgraph", 3).app) as msgraph,
        serve_in_thread(make_simulator("zendesk", 3).app) as zendesk,
    ):
        simulated = {"hubspot": hubspot, "salesforce": salesforce, "msgraph": msgraph, "zendesk": zendesk}
        for name, url in simulated.items():  # the operator points each app's sign-in at its simulator
            monkeypatch.setenv(f"INLET_OAUTH_ENDPOINTS__{name.upper()}", url)
        get_settings.cache_clear()
        assert invoke("init")[0] == 0 and invoke("tenants", "add", "acme")[0] == 0
        settings = get_settings()
        engine = open_store(settings.store_url)
        receiver = create_receiver(engine, Vault.from_settings(settings), lambda t, c: None, settings=settings)
        for name in apps:
            code, out = invoke(
                "oauth",
                "clients",
                "add",
                "--app",
                name,
                "--client-id",
                SIM_CLIENT_ID,
                "--client-secret",
                "env:SIM_SECRET",
            )
            assert code == 0, out
        SIMULATORS["hubspot"] = hubspot_sim
        with serve_in_thread(receiver) as receiver_url:
            yield {"receiver": receiver_url, **simulated}


def sign_in(sims: dict[str, str], *connect_args: str) -> httpx.Response:
    """Run `connections connect`, open the printed link and follow the app back to the receiver."""
    code, out = invoke("connections", "connect", "-t", "acme", *connect_args)
    assert code == 0, out
    link = out.strip().splitlines()[-1]
    query = parse_qs(urlsplit(httpx.get(link, timeout=10).headers["location"]).query)
    params = {"code": query["code"][0], "state": query["state"][0]}
    return httpx.get(f"{sims['receiver']}/oauth/callback", params=params, timeout=30)


def test_connect_prints_a_link_whose_callback_connects_and_show_masks_every_secret(sims: dict[str, str]) -> None:
    url = sims["hubspot"]
    assert sign_in(sims, "--app", "hubspot", "-p", f"base_url={url}", "-p", f"login_url={url}").status_code == 200
    code, out = invoke("connections", "show", "-t", "acme", "-c", "acme-hubspot")
    settings = get_settings()
    row = read_tokens(open_store(settings.store_url), Vault.from_settings(settings), "acme-hubspot")
    assert code == 0 and row is not None and row.tokens.refresh_token is not None
    assert "oauth: authorization_code, active" in out and "access_token=***" in out
    assert (
        row.tokens.access_token.get_secret_value() not in out and row.tokens.refresh_token.get_secret_value() not in out
    )
    code, out = invoke("oauth", "clients", "list")
    assert code == 0 and {row["client secret"] for row in table_rows(out)} == {"***"} and SIM_CLIENT_SECRET not in out
    code, out = invoke("status")
    assert re.search(r"^auth +oauth:active$", out, re.MULTILINE), out


def test_salesforce_learns_the_instance_url_from_the_token(sims: dict[str, str]) -> None:
    url = sims["salesforce"]
    assert sign_in(sims, "--app", "salesforce", "--id", "acme-sf", "-p", f"login_url={url}").status_code == 200
    code, out = invoke("connections", "show", "-t", "acme", "-c", "acme-sf")
    assert code == 0 and f"'base_url': '{url}'" in out


def test_a_graph_sign_in_through_organizations_keeps_the_tenant_directory(sims: dict[str, str]) -> None:
    from connectors.msgraph.simulator import TENANT_ID

    url = sims["msgraph"]
    params = ["-p", f"base_url={url}", "-p", f"login_url={url}"]  # directory: the default, organizations
    assert sign_in(sims, "--app", "msgraph", "--id", "acme-graph", *params).status_code == 200
    code, out = invoke("connections", "show", "-t", "acme", "-c", "acme-graph")
    assert code == 0 and f"'directory': '{TENANT_ID}'" in out


def test_graph_app_only_connects_without_a_sign_in(sims: dict[str, str]) -> None:
    url = sims["msgraph"]
    params = ["-p", f"base_url={url}", "-p", f"login_url={url}", "-p", "directory=contoso.onmicrosoft.com"]
    code, out = invoke(
        "connections", "connect", "-t", "acme", "--app", "msgraph", "--grant", "client_credentials", *params
    )
    assert code == 0 and "app-only" in out, out
    code, out = invoke("connections", "show", "-t", "acme", "-c", "acme-msgraph")
    assert "oauth: client_credentials, active" in out and "refresh_token=-" in out


def test_a_zendesk_account_can_bring_its_own_oauth_client(sims: dict[str, str]) -> None:
    own = ["--credential", f"client_id={SIM_CLIENT_ID}", "--credential", "client_secret=env:SIM_SECRET"]
    code, out = invoke(
        "connections",
        "add",
        "-t",
        "acme",
        "--id",
        "acme-zd",
        "--app",
        "zendesk",
        "-p",
        f"base_url={sims['zendesk']}",
        *own,
    )
    assert code == 0, out
    assert sign_in(sims, "--app", "zendesk", "--id", "acme-zd").status_code == 200
    code, out = invoke("connections", "show", "-t", "acme", "-c", "acme-zd")
    assert "oauth: authorization_code, active" in out and "client_secret=***" in out and SIM_CLIENT_SECRET not in out


def test_an_app_without_a_client_or_grant_is_a_clear_error(sims: dict[str, str]) -> None:
    code, out = invoke(
        "connections", "connect", "-t", "acme", "--app", "zendesk", "-p", "base_url=https://z.zendesk.com"
    )
    assert code == 2 and "inlet oauth clients add --app zendesk" in out
    code, out = invoke("connections", "connect", "-t", "acme", "--app", "hubspot", "--grant", "client_credentials")
    assert code == 2 and "does not offer the OAuth grant client_credentials" in out


def test_two_processes_on_one_connection_refresh_its_token_once(sims: dict[str, str]) -> None:
    url = sims["hubspot"]
    assert sign_in(sims, "--app", "hubspot", "-p", f"base_url={url}", "-p", f"login_url={url}").status_code == 200
    oauth = SIMULATORS["hubspot"].oauth
    assert oauth is not None
    oauth.expire_access_tokens()  # both processes start with a token the app now refuses
    oauth.configure(token_delay=0.5)
    command = [sys.executable, "-m", "inlet.cli", "connectors", "changes", "-t", "acme", "-c", "acme-hubspot"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [proc.communicate(timeout=120)[0].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert all("3 changes" in out for out in outputs) and oauth.counts["refresh_token"] == 1


def test_a_connection_needing_reauth_is_a_clear_cli_error(sims: dict[str, str]) -> None:
    url = sims["hubspot"]
    assert sign_in(sims, "--app", "hubspot", "-p", f"base_url={url}", "-p", f"login_url={url}").status_code == 200
    oauth = SIMULATORS["hubspot"].oauth
    assert oauth is not None
    oauth.revoke_all()
    for _ in range(2):
        code, out = invoke("connectors", "changes", "-t", "acme", "-c", "acme-hubspot")
        assert code == 1 and "connect again" in out
    assert oauth.counts["refused"] == 1
    assert re.search(r"^auth +oauth:needs_reauth$", invoke("status")[1], re.MULTILINE)
