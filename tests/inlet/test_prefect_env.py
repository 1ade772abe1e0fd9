"""The Prefect settings of the embedded default: offline, on 127.0.0.1, patient with a busy SQLite server,
and never over a value the user set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inlet.local import apply_prefect_env, prefect_env
from inlet.settings import Settings


def test_the_embedded_default_stays_local_and_offline(tmp_path: Path) -> None:
    env = prefect_env(Settings(home=tmp_path, prefect_port=4321))
    assert env["PREFECT_SERVER_API_HOST"] == "127.0.0.1" and env["PREFECT_SERVER_API_PORT"] == "4321"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_HOME"] == str((tmp_path / "prefect").resolve())
    assert int(env["PREFECT_CLIENT_MAX_RETRIES"]) > 5  # Prefect's default lost runs to SQLite's 503s


def test_a_value_the_user_set_wins_and_a_set_api_url_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path)
    for name in prefect_env(settings):
        monkeypatch.delenv(name, raising=False)  # and removed again after the test, with what apply sets
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "3")
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.internal:4200/api")
    apply_prefect_env(settings, use_local_server=True)
    assert os.environ["PREFECT_SERVER_API_HOST"] == "127.0.0.1"
    assert os.environ["PREFECT_CLIENT_MAX_RETRIES"] == "3"
    assert os.environ["PREFECT_API_URL"] == "http://prefect.internal:4200/api"
