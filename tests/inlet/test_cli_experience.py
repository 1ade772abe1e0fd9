"""The CLI as a tool: `--help` loads no heavy module, commands come in an operator's order, lists are paged
tables with human times, and every known failure is one line and a non-zero exit (a traceback only under
--debug). Commands that run flows never start a Prefect server of their own."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import Session
from typer.testing import CliRunner

from inlet.cli import app
from inlet.cli.output import human_time
from inlet.errors import Conflict
from inlet.local import free_port
from inlet.settings import get_settings
from inlet.store import DestinationOverride, Vault, add_connection, add_tenant, open_store
from tests.support.tables import table_rows

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    assert runner.invoke(app, ["init"]).exit_code == 0
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _connection(tenant: str = "demo", connection: str = "demo-hubspot") -> None:
    settings = get_settings()
    engine = open_store(settings.store_url)
    with contextlib.suppress(Conflict):  # the tenant's second connection
        add_tenant(engine, tenant)
    add_connection(engine, Vault.from_settings(settings), tenant_id=tenant, connection_id=connection, app="hubspot",
                   parameters={"base_url": "http://127.0.0.1:9"}, credentials={"token": SecretStr("x")},
                   egress=settings.egress.policy())  # fmt: skip


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an operator's shell: no PREFECT_* or INLET_* but these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "INLET_"))}
    return env | {"INLET_HOME": str(home), "PYTHONPATH": str(ROOT), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"} | extra


def test_help_imports_neither_prefect_nor_the_store_nor_httpx() -> None:
    """Asserts the imports, not a time: what `inlet --help` loads in a fresh interpreter."""
    probe = (
        "import sys\nsys.argv = ['inlet', '--help']\nfrom inlet.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('prefect', 'sqlalchemy', 'sqlmodel', 'httpx', 'connectors', 'inlet.service', 'inlet.store', 'rich')\n"
        "print('LOADED', sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout[-500:]
    assert "Start here" in done.stdout and "Inspect and fix" in done.stdout


def test_help_lists_commands_in_an_operators_order() -> None:
    code, out, _ = invoke("--help")
    order = [out.index(f"\n  {name} ") for name in ("init", "up", "status", "tenants", "connections", "import")]
    assert code == 0 and order == sorted(order)
    assert out.index("Start here") < out.index("Set up") < out.index("Run") < out.index("Inspect and fix")


def test_tenants_list_is_a_table_with_a_footer_naming_the_next_page() -> None:
    for name in ("alpha", "beta", "gamma"):
        assert invoke("tenants", "add", name, "--name", name.title())[0] == 0
    code, out, _ = invoke("tenants", "list", "--limit", "2")
    assert code == 0 and table_rows(out) == [{"tenant": "alpha", "name": "Alpha"}, {"tenant": "beta", "name": "Beta"}]
    footer = out.rstrip().splitlines()[-1]
    assert footer.startswith("2 shown; more: inlet tenants list --limit 2 --cursor ")
    code, out, _ = invoke("tenants", "list", *footer.split("more: inlet tenants list ")[1].split())
    assert code == 0 and [row["tenant"] for row in table_rows(out)] == ["gamma"] and "no more" in out


def test_connections_list_pages_one_tenant_and_slices_all_tenants() -> None:
    for connection in ("a-1", "a-2", "a-3"):
        _connection("alpha", connection)
    _connection("beta", "b-1")
    code, out, _ = invoke("connections", "list", "-t", "alpha", "--limit", "2")
    assert code == 0 and [row["connection"] for row in table_rows(out)] == ["a-1", "a-2"]
    footer = out.rstrip().splitlines()[-1]
    assert footer.startswith("2 shown; more: inlet connections list --tenant alpha --limit 2 --cursor ")
    code, out, _ = invoke("connections", "list", *footer.split("more: inlet connections list ")[1].split())
    assert code == 0 and [row["connection"] for row in table_rows(out)] == ["a-3"] and "no more" in out
    code, out, _ = invoke("connections", "list", "--limit", "3")
    assert code == 0 and [row["connection"] for row in table_rows(out)] == ["a-1", "a-2", "a-3"]
    assert "3 shown, 1 more: inlet connections list --limit 4" in out
    assert invoke("connections", "list", "--cursor", "x")[0] == 2


def test_times_read_as_a_person_reads_them() -> None:
    now = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    assert human_time(1_796_619_300_000, now=now) == "2026-12-07 04:55:00 UTC (5 min ago)"  # epoch milliseconds
    assert human_time(1_796_619_300, now=now) == "2026-12-07 04:55:00 UTC (5 min ago)"  # epoch seconds
    assert human_time("2026-12-07T07:00:00+00:00", now=now) == "2026-12-07 07:00:00 UTC (in 2 h)"
    assert human_time(None) == "-" and human_time("never") == "never"


# One line per known failure, a non-zero exit code, and no traceback unless --debug.


def _one_line(code: int, stdout: str, stderr: str, expected_code: int, text: str) -> None:
    assert code == expected_code, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], stderr
    assert "Traceback" not in stdout + stderr


def test_a_bad_cursor_is_one_line_and_exit_2() -> None:
    _one_line(*invoke("tenants", "list", "--cursor", "not-a-cursor"), 2, "the cursor is not one this API handed out")


def test_a_missing_connection_is_one_line_and_exit_2() -> None:
    _one_line(*invoke("import", "full", "-t", "nobody", "-c", "nothing"), 2, "nobody")


@pytest.mark.parametrize("url", ["ftp://[::1", "app.example.com", "ftp://app.example.com"])
def test_an_invalid_url_is_one_line_and_nothing_is_saved(url: str) -> None:
    assert invoke("tenants", "add", "demo")[0] == 0
    _one_line(*invoke("deliveries", "destination", "set", "-t", "demo", "--url", url), 2, f"invalid URL {url!r}")
    with Session(open_store(get_settings().store_url)) as session:
        assert session.get(DestinationOverride, "demo") is None


def test_a_slot_timeout_is_one_line_naming_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from inlet import service

    def held(*_: object, **__: object) -> None:
        raise TimeoutError("no free slot on inlet-connection-demo-hubspot within 60s")

    monkeypatch.setattr(service, "run_here", held)
    _one_line(*invoke("deliver", "-t", "demo", "-c", "demo-hubspot"), 4, "no free slot on inlet-connection-demo")


def test_an_unexpected_failure_is_one_line_and_its_traceback_shows_under_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from inlet import service

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(service, "run_here", broken)
    code, out, err = invoke("deliver", "-t", "demo", "-c", "demo-hubspot")
    _one_line(code, out, err, 1, "unexpected RuntimeError: disk on fire (the rest with --debug)")
    assert "run again with --debug" in err
    code, out, err = invoke("--debug", "deliver", "-t", "demo", "-c", "demo-hubspot")
    assert code == 1 and "Traceback" in err and "second line" in err


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on that is not the component (it accepts and never answers HTTP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_a_busy_port_is_one_line_naming_the_setting(busy_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INLET_PREFECT_PORT", str(busy_port))
    get_settings.cache_clear()
    code, out, err = invoke("up", "--records", "10")
    _one_line(code, "", err, 3, f"port {busy_port} on 127.0.0.1 is taken by another program")
    assert "INLET_PREFECT_PORT" in err


def test_without_a_prefect_server_a_run_says_how_to_start_one_and_starts_none(home: Path) -> None:
    """An operator's shell: no PREFECT_API_URL, nothing on INLET_PREFECT_PORT. Before, a temporary server
    started, wrote its database under Prefect's home and ran the import there."""
    _connection()
    env = _clean_env(home, INLET_PREFECT_PORT=str(free_port()))
    command = [sys.executable, "-m", "inlet.cli", "import", "full", "-t", "demo", "-c", "demo-hubspot"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    _one_line(done.returncode, done.stdout, done.stderr, 3, "no Prefect server answers on 127.0.0.1:")
    assert "`inlet up` (or `make up`)" in done.stderr and "temporary server" not in done.stdout + done.stderr
    assert not (home / "prefect" / "prefect.db").exists()


def test_an_unreachable_prefect_server_is_one_line(home: Path) -> None:
    _connection()
    env = _clean_env(home, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api", PREFECT_CLIENT_MAX_RETRIES="0")
    command = [sys.executable, "-m", "inlet.cli", "import", "full", "-t", "demo", "-c", "demo-hubspot"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    _one_line(done.returncode, done.stdout, done.stderr, 3, "the Prefect server does not answer")
