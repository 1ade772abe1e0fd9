"""Connectors from outside the source tree: INLET_CONNECTORS_PATH folders and `inlet.connectors` entry points,
and the changes check that makes a create, an update and a delete at the source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from connectors.check import SimulatorWriter, run_checks
from connectors.errors import SpecError
from connectors.registry import CONNECTORS_DIR, available, builtin, load, make_simulator, open_connector, simulated
from inlet.cli import app
from tests.support.oauth import SIMULATOR_EGRESS
from tests.support.outside import EXAMPLE, outside_connector
from tests.support.serving import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
NO_CREATED_FILTER = {"        - {param: created_after}\n": ""}


async def check(app: str) -> dict[str, tuple[bool, str]]:
    sim = make_simulator(app, 30)
    parameters, credentials = sim.connection("https://simulator.test")
    transport = httpx.ASGITransport(app=sim.app)
    connector = open_connector(
        app, parameters=parameters, credentials=credentials, transport=transport, egress=SIMULATOR_EGRESS
    )
    async with connector, httpx.AsyncClient(transport=transport) as control:
        writer = SimulatorWriter(control, "http://sim")
        results = await run_checks(connector, load(app)[0].collection_for("users"), writer)
    return {r.name: (r.ok, r.detail) for r in results}


def test_an_outside_folder_connector_is_listed_and_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside_connector(tmp_path, monkeypatch)
    assert "tinycrm" in available() and "tinycrm" in simulated() and "tinycrm" not in builtin()
    assert load("tinycrm")[0].title == "TinyCRM" and not str(tmp_path).startswith(str(REPO))


def test_a_name_clash_with_a_built_in_names_both_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(CONNECTORS_DIR / "kinto", tmp_path / "kinto", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("INLET_CONNECTORS_PATH", str(tmp_path))
    with pytest.raises(SpecError, match="two connectors are named 'kinto'") as raised:
        available()
    assert str(CONNECTORS_DIR / "kinto") in str(raised.value) and str(tmp_path / "kinto") in str(raised.value)


def test_a_path_entry_that_is_no_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INLET_CONNECTORS_PATH", str(tmp_path / "missing"))
    with pytest.raises(SpecError, match="is not a folder"):
        available()


def test_an_installed_entry_point_adds_its_connector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "tinycrm_inlet" / "tinycrm"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    info = tmp_path / "tinycrm_inlet-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinycrm-inlet\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[inlet.connectors]\ntinycrm = tinycrm_inlet.tinycrm\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tinycrm" in simulated() and load("tinycrm")[0].name == "tinycrm"
    assert type(make_simulator("tinycrm", 3)).__module__ == "tinycrm_inlet.tinycrm.simulator"


def test_the_outside_connector_passes_the_contract_suite(tmp_path: Path) -> None:
    root = tmp_path / "team-connectors"
    shutil.copytree(EXAMPLE, root / "tinycrm", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "INLET_CONNECTORS_PATH": str(root)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/connectors/test_contract.py"]
    done = subprocess.run([*command, "-k", "tinycrm"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    # 11 of the contract: the OAuth test is not collected for TinyCRM, which declares no OAuth sign-in
    assert "11 passed," in done.stdout and "skipped" not in done.stdout


@pytest.mark.parametrize("app", sorted({*simulated(), "tinycrm"}))
async def test_the_changes_check_sees_a_create_an_update_and_a_delete(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside_connector(tmp_path, monkeypatch)
    results = await check(app)
    assert all(ok for ok, _ in results.values()), results
    assert "a create, an update and a delete made at the source" in results["changes"][1]


async def test_the_changes_check_fails_a_spec_without_the_created_since_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside_connector(tmp_path, monkeypatch, NO_CREATED_FILTER)
    ok, detail = (await check("tinycrm"))["changes"]
    assert not ok and "created at the source" in detail and "misses creates" in detail
    assert "deleted at the source" not in detail and "updated at the source" not in detail


async def test_the_changes_check_fails_a_spec_without_the_deletions_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = outside_connector(tmp_path, monkeypatch)
    spec = folder / "connector.yaml"
    text = spec.read_text()
    start, end = text.index("      # deleted contacts vanish"), text.index("    # a full import starts")
    spec.write_text(text[:start] + text[end:])
    ok, detail = (await check("tinycrm"))["changes"]
    assert not ok and "deleted at the source" in detail and "misses deletions" in detail
    assert "created at the source" not in detail


@pytest.mark.parametrize("edits", [{}, NO_CREATED_FILTER], ids=["good", "no-created-filter"])
def test_connectors_check_make_changes_through_the_cli(
    edits: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside_connector(tmp_path, monkeypatch, edits)
    sim = make_simulator("tinycrm", 40)
    with serve_in_thread(sim.app) as url:
        token = sim.connection(url)[1]["token"].get_secret_value()
        args = ["connectors", "check", "tinycrm", "--base-url", url, f"--credential=token={token}", "--make-changes"]
        result = CliRunner().invoke(app, args)
    [changes] = [line for line in result.output.splitlines() if "│ changes" in line]
    if edits:
        assert result.exit_code == 1 and "FAIL" in changes and "misses creates" in result.output, result.output
    else:
        assert result.exit_code == 0 and "│ ok" in changes, result.output
    assert sim.stats()["records"] == 40  # one created, one deleted by the check
