"""Test-wide set-up: project-local Prefect home and temp dir, a clean INLET_* environment, one Prefect
test server for the session, and `inlet_env`, a tenant with a connection, a store and a demo app.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
_CACHE = _ROOT / ".cache" / "test"
(_CACHE / "tmp").mkdir(parents=True, exist_ok=True)
os.environ["TMPDIR"] = str(_CACHE / "tmp")
# Under pytest-xdist each worker has its own Prefect home (and its own session Prefect server, below).
os.environ.setdefault("PREFECT_HOME", str(_CACHE / f"prefect-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = "connectors,mappings,inlet"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"  # connector warnings outside a run
os.environ.pop("PREFECT_API_URL", None)

import httpx  # noqa: E402
import psycopg  # noqa: E402
import pytest  # noqa: E402
from psycopg import sql  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from inlet.local import free_port, start_process, stop_process  # noqa: E402
from inlet.settings import Settings, get_settings  # noqa: E402

_NEEDS = {
    "postgres": ({"pg_databases", "pg_store"}, "PG"),
    "needs_kinto": ({"kinto_server", "kinto_collection"}, "KINTO"),
    "needs_json_server": ({"json_server_factory"}, "JSON_SERVER"),
    "needs_chromium": (set(), "CHROMIUM"),
}


# The longest modules start first, so that under `-n 2` the two workers finish together (xdist hands out whole
# modules in this order with --no-loadscope-reorder); minutes each on this machine.
LONGEST_FIRST = (
    "tests/integration/test_scale_out.py",
    "tests/integration/test_stack.py",
    "tests/integration/test_slot_after_server_crash.py",
    "tests/integration/test_bench_scale.py",
    "tests/security/test_secret_grep.py",
    "tests/push/test_push_faults.py",
    "tests/push/test_saas_round_trip.py",
    "tests/flows/test_incremental.py",
    "tests/push/test_round_trip.py",
    "tests/flows/test_oauth_import.py",
    "tests/integration/test_import_real_apps.py",
)


def _start_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::")[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with the reason, the tests whose outside service is absent on this machine (CI has them all); the
    longest modules first."""
    items.sort(key=_start_rank)  # stable: each module keeps its own order
    from bench.real_apps import JSON_SERVER_SKIP_REASON, json_server_bin
    from tests.support.real_apps import KINTO_SKIP_REASON, kinto_bin

    present = {
        "PG": _pg_reachable(),
        "KINTO": kinto_bin() is not None,
        "JSON_SERVER": json_server_bin() is not None,
        "CHROMIUM": shutil.which("chromium") is not None,
    }
    reasons = {
        "PG": PG_SKIP_REASON,
        "KINTO": KINTO_SKIP_REASON,
        "JSON_SERVER": JSON_SERVER_SKIP_REASON,
        "CHROMIUM": "chromium not installed (Debian: apt-get install chromium); the Prefect UI screenshot needs it",
    }
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for marker, (needed_fixtures, service) in _NEEDS.items():
            if item.get_closest_marker(marker) is not None or fixtures & needed_fixtures:
                item.add_marker(pytest.mark.skipif(not present[service], reason=reasons[service]))


LOOPBACK_ALLOWED = '["127.0.0.1"]'  # the simulators and real apps of the tests listen on 127.0.0.1


@pytest.fixture(autouse=True)
def _clean_inlet_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No INLET_* setting leaks in from the shell or from another test; the egress guard allows 127.0.0.1
    (explicitly, as an operator would: tests/security/ checks the guard with nothing allowed)."""
    for name in list(os.environ):
        # INLET_CONNECTORS_PATH stays: it is how a team runs the contract suite on its own connectors
        if name.startswith("INLET_") and name not in ("INLET_JSON_SERVER_BIN", "INLET_CONNECTORS_PATH"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("INLET_EGRESS__ALLOW_HOSTS", LOOPBACK_ALLOWED)
    # The CLI quiets Prefect's console in its own process (`quiet_prefect_console`); under CliRunner that is the
    # test process, whose environment the processes later tests start inherit (the scale-out workers' logs).
    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "")
    monkeypatch.delenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One temporary Prefect server (SQLite) for the whole session; its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@dataclass
class InletEnv:
    """A configured inlet home with a HubSpot simulator, a demo app and tenant `acme` / `acme-hubspot`."""

    settings: Settings
    env: dict[str, str]
    simulator: str
    app: str
    simulator_command: list[str]
    processes: dict[str, Any]

    def stop_simulator(self) -> None:
        stop_process(self.processes.pop("simulator"))

    def start_simulator(self) -> None:
        self.processes["simulator"] = start_process(self.simulator_command, self.simulator + "/_sim/stats")

    def app_stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.app + "/stats", timeout=10).json())

    def app_records(self, **params: str) -> list[dict[str, Any]]:
        return list(httpx.get(self.app + "/records", params=params, timeout=30).json())

    def sim(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.simulator}/_sim/{path}"
        response = httpx.post(url, json=body, timeout=10) if body is not None else httpx.get(url, timeout=10)
        response.raise_for_status()
        return dict(response.json())


InletEnvFactory = Callable[..., InletEnv]
DatabaseFactory = Callable[[], str]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_SKIP_REASON = "PostgreSQL not reachable at 127.0.0.1:5432"


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[DatabaseFactory]:
    """`create()` makes an empty database `inlet_test_<random>` and returns its URL; all are dropped at the end."""
    created: list[str] = []

    def create() -> str:
        name = f"inlet_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield create
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in created:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


SIM_TOKEN = "pat-na1-test-token-7f3a9c"


@pytest.fixture
def inlet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Iterator[InletEnvFactory]:
    """`factory(records=300, start_app=True, **sim_options)`: everything a full import needs, on loopback."""
    started: dict[str, Any] = {}

    def factory(
        records: int = 300, start_app: bool = True, sim_args: tuple[str, ...] = (), database_url: str | None = None
    ) -> InletEnv:
        from inlet.service import initialise
        from inlet.store import Vault, add_connection, add_tenant

        sim_port, app_port = free_port(), free_port()
        env = {
            "INLET_HOME": str(tmp_path / "home"),
            "INLET_DESTINATION__URL": f"http://127.0.0.1:{app_port}",
            "INLET_DESTINATION__MAX_ATTEMPTS": "2",
            "INLET_DESTINATION__BACKOFF_SECONDS": "0",
            "INLET_SOURCE_RETRY__ATTEMPTS": "2",
            "INLET_SOURCE_RETRY__BACKOFF_SECONDS": "0",
            "INLET_OAUTH_ENDPOINTS__HUBSPOT": f"http://127.0.0.1:{sim_port}",  # the operator's: sign-in at the sim
        }
        if database_url:
            env["INLET_DATABASE_URL"] = database_url
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        initialise(settings)
        secret = settings.destination_secret()
        assert secret is not None
        sim = f"http://127.0.0.1:{sim_port}"
        command = [sys.executable, "-m", "connectors.hubspot.simulator", "--port", str(sim_port)]
        command += ["--records", str(records), "--token", SIM_TOKEN, *sim_args]
        started["simulator"] = start_process(command, sim + "/_sim/stats", log_path=tmp_path / "sim.log")
        app = f"http://127.0.0.1:{app_port}"
        if start_app:
            started["app"] = start_app_process(app_port, tmp_path, secret.get_secret_value())
        from inlet.store import open_store

        engine = open_store(settings.store_url)
        add_tenant(engine, "acme")
        add_connection(
            engine,
            Vault.from_settings(settings),
            tenant_id="acme",
            connection_id="acme-hubspot",
            app="hubspot",
            parameters={"base_url": sim},
            credentials={"token": SecretStr(SIM_TOKEN)},
        )
        return InletEnv(settings, {**os.environ, **env, "PREFECT_API_URL": prefect_api}, sim, app, command, started)

    yield factory
    for proc in started.values():
        stop_process(proc)


def start_app_process(port: int, folder: Path, secret: str) -> Any:
    """The demo app on 127.0.0.1:port, storing into folder/app.db."""
    return start_process(
        [sys.executable, "-m", "inlet.demo.app", "--port", str(port), "--db", str(folder / "app.db")],
        f"http://127.0.0.1:{port}/health",
        env={"INLET_DEMO_APP_SECRET": secret},
        log_path=folder / "app.log",
    )
