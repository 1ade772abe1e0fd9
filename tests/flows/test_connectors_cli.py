"""Every simulated connector through the CLI: connect, full import into the demo app, pull changes, check."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from connectors.registry import load, make_simulator, simulated
from inlet.cli import app
from tests.conftest import InletEnvFactory
from tests.support.serving import serve_in_thread

runner = CliRunner()


@pytest.mark.parametrize("name", simulated())
def test_connect_import_and_pull_changes_through_the_cli(name: str, inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=1)
    sim = make_simulator(name, 120)
    with serve_in_thread(sim.app) as url:
        parameters, credentials = sim.connection(url)
        args = ["connections", "add", "-t", "acme", "--id", f"cli-{name}", "--app", name]
        args += [f"--param={k}={v}" for k, v in parameters.items()]
        args += [f"--credential={k}={v.get_secret_value()}" for k, v in credentials.items()]
        assert runner.invoke(app, args).exit_code == 0
        imported = runner.invoke(app, ["import", "full", "-t", "acme", "-c", f"cli-{name}"])
        sim.update(2)
        pulled = runner.invoke(app, ["connectors", "changes", "-t", "acme", "-c", f"cli-{name}"])
    assert imported.exit_code == 0, imported.output
    assert "records_seen: 120" in imported.output and "delivered: 120" in imported.output
    assert pulled.exit_code == 0 and "next token:" in pulled.output, pulled.output
    assert len(env.app_records(connection=f"cli-{name}")) == 120


@pytest.mark.parametrize("name", simulated())
def test_connectors_check_passes_against_the_simulator(name: str) -> None:
    sim = make_simulator(name, 250)
    with serve_in_thread(sim.app) as url:
        parameters, credentials = sim.connection(url)
        args = ["connectors", "check", name, "--base-url", parameters.pop("base_url", url)]
        args += [f"--param={k}={v}" for k, v in parameters.items()]
        args += [f"--credential={k}={v.get_secret_value()}" for k, v in credentials.items()]
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ok   list" in result.output and "250 records, each once" in result.output


def test_connectors_list_names_what_each_supports() -> None:
    result = runner.invoke(app, ["connectors", "list"])
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert result.exit_code == 0 and "changes" in lines["kinto"] and "changes" not in lines["json_server"]
    assert all(name in lines for name in simulated()) and load("kinto")[0].title in lines["kinto"]
