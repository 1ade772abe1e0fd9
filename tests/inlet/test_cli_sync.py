"""`inlet connections policy|pause|resume|reconcile` and `inlet inbox list`: thin clients of inlet.service.sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.cli import app
from inlet.service import open_installation, sync_of
from inlet.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    assert runner.invoke(app, ["init"]).exit_code == 0
    for args in (["tenants", "add", "acme"], ["tenants", "add", "globex"]):
        assert runner.invoke(app, args).exit_code == 0
    added = [
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
    ]
    assert runner.invoke(app, added).exit_code == 0
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _row() -> dict[str, object]:
    get_settings.cache_clear()
    return sync_of(open_installation(get_settings()), "acme", "acme-hs")


def test_the_policy_is_changed_and_shown() -> None:
    code, output = invoke("connections", "policy", "-t", "acme", "-c", "acme-hs", "--poll-interval", "60", "--webhooks")
    assert code == 0 and "poll every 60s" in output and "webhooks on" in output
    assert (_row()["poll_every"], _row()["change_source"]) == (60, "webhook (set up by the operator) + poll")
    code, output = invoke("connections", "policy", "-t", "acme", "-c", "acme-hs", "--poll-interval", "2")
    assert code != 0 and "at least 10" in output and _row()["poll_every"] == 60


def test_pause_resume_and_reconcile_change_the_stored_policy() -> None:
    assert invoke("connections", "pause", "-t", "acme", "-c", "acme-hs")[0] == 0
    assert str(_row()["state"]).startswith("paused")
    assert invoke("connections", "resume", "-t", "acme", "-c", "acme-hs")[0] == 0
    assert _row()["state"] == "active"
    assert invoke("connections", "reconcile", "-t", "acme", "-c", "acme-hs")[0] == 0
    assert _row()["requested"] == "reconcile"


def test_another_tenants_connection_is_not_found() -> None:
    for command in ("pause", "resume", "reconcile"):
        code, output = invoke("connections", command, "-t", "globex", "-c", "acme-hs")
        assert code != 0 and "no connection" in output
    assert _row()["state"] == "active" and _row()["requested"] is None
    code, output = invoke("inbox", "list", "-t", "acme")
    assert code == 0 and output.strip() == "no poison events"
