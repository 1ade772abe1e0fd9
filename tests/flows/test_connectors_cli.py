"""Every simulated connector through the CLI: connect, full import into the demo app, pull changes, check."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from connectors.registry import load, make_simulator, simulated
from inlet.cli import app
from tests.conftest import InletEnvFactory
from tests.support.serving import serve_in_thread
from tests.support.tables import table_rows

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
    summary = imported.stdout  # once, as a table; the progress bar on stderr, moved by the run's reports
    assert re.search(r"^records seen +120$", summary, re.MULTILINE) and re.search(r"^delivered +120$", summary, re.M)
    assert summary.count("records seen") == 1 and "{" not in summary, summary
    assert "100%" in imported.stderr and "120 records" in imported.stderr and "rate limit: waited" in imported.stderr
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
    checks = {row["check"]: row for row in table_rows(result.output)}
    assert checks["list"]["result"] == "ok" and "250 records, each once" in checks["list"]["detail"]


def test_connectors_list_names_what_each_supports() -> None:
    result = runner.invoke(app, ["connectors", "list"])
    rows = {row["connector"]: row for row in table_rows(result.output)}
    assert result.exit_code == 0 and "changes" in rows["kinto"]["supports"]
    assert "changes" not in rows["json_server"]["supports"]
    assert all(name in rows for name in simulated()) and rows["kinto"]["app"] == load("kinto")[0].title
