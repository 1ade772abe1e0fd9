"""The secret grep: a source that echoes a connection's credentials back, in every encoding, must leave no
trace of them in the CLI's output, the run logs, the store, the Prefect database or any file of the state
folder, and that folder is its owner's alone. The CLI runs as an operator runs it (`python -m inlet.cli`,
started with umask 022 like any shell), with Prefect's home and database inside INLET_HOME: a Prefect server
started there, as `inlet up` starts it (the CLI starts none of its own).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inlet.local import free_port, prefect_env, start_process, stop_process
from inlet.settings import EgressSettings, Settings
from inlet.store import Vault, add_connection, add_tenant, open_store
from tests.support.serving import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
USER = "cnry-user-7Q2v"
PASSWORD = 'cnry/Pw+7=x:"é&k y'  # a slash, plus, equals, colon, quote, non-ASCII, ampersand and space
BASIC = f"{USER}:{PASSWORD}"


def encodings(secret: str) -> dict[str, str]:
    """The forms a secret travels in (written out here, independently of the redactor under test)."""
    raw, url = secret.encode(), quote(secret, safe="")
    return {
        "literal": secret,
        "url": url,
        "url-lower": url.replace("%2F", "%2f").replace("%2B", "%2b").replace("%3D", "%3d").replace("%C3%A9", "%c3%a9"),
        "form": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "json-slash": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


NEEDLES = {f"{what}/{form}": value for what in ("password", "basic") for form, value in encodings(
    PASSWORD if what == "password" else BASIC).items()}  # fmt: skip


def _echo(request: Request) -> bytes:
    """What a careless API answers: the Authorization header it got, and the password in every encoding (the
    JSON forms by JSON-encoding the password itself, as an app that puts it in a JSON field would)."""
    forms = encodings(PASSWORD)
    lines = [
        f"authorization: {request.headers.get('authorization', '')}",
        json.dumps({"password": PASSWORD, "login": BASIC}),
        *(f"{name}: {forms[name]}" for name in ("literal", "url", "url-lower", "form", "base64", "base64url")),
        f"php-json: {forms['json-slash']}",
    ]
    return "\n".join(lines).encode()


@dataclass
class Runs:
    home: Path
    outputs: list[str]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """`inlet init`, a Kinto connection to the echoing source, then two failing `inlet import full` runs: one
    retried on 500 (each attempt logged), one refused with 401 (the CLI's error, the run's failure)."""
    state = {"status": 500}

    async def answer(request: Request) -> Response:
        return Response(_echo(request), state["status"], media_type="text/plain")

    home = tmp_path_factory.mktemp("secret-grep") / "home"
    port = free_port()
    with serve_in_thread(Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])) as base:
        assert _cli(home, port, "init").returncode == 0
        server = _prefect_server(home, port)
        try:
            _connect(home, base)
            outputs = []
            for status in (500, 401):
                state["status"] = status
                run = _cli(home, port, "import", "full", "-t", "acme", "-c", "acme-echo")
                assert run.returncode == 1, run.stdout + run.stderr
                outputs.append(run.stdout + run.stderr)
        finally:
            stop_process(server)
    yield Runs(home, outputs)


def _prefect_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    """`prefect server start` with its home under INLET_HOME, as `inlet up` runs it."""
    settings = Settings(home=home, prefect_port=port)
    prefect = str(Path(sys.executable).parent / "prefect")
    command = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | prefect_env(settings)
    health = f"http://127.0.0.1:{port}/api/health"
    old = os.umask(0o077)  # `inlet up` starts it under the CLI's owner-only umask
    try:
        return start_process(command, health, env=env, timeout=180, log_path=home.parent / "prefect-server.log")
    finally:
        os.umask(old)


def _connect(home: Path, base: str) -> None:
    settings = Settings(home=home, egress=EgressSettings(allow_hosts=["127.0.0.1"]))
    engine = open_store(settings.store_url)
    add_tenant(engine, "acme")
    credentials = {"username": SecretStr(USER), "password": SecretStr(PASSWORD)}
    add_connection(engine, Vault.from_settings(settings), tenant_id="acme", connection_id="acme-echo", app="kinto",
                   parameters={"base_url": base}, credentials=credentials, egress=settings.egress.policy())  # fmt: skip
    engine.dispose()


def _cli(home: Path, prefect_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "INLET_"))}
    environment |= {
        "INLET_HOME": str(home),
        "INLET_PREFECT_PORT": str(prefect_port),  # the server of _prefect_server, its home under INLET_HOME
        "INLET_SOURCE_RETRY__ATTEMPTS": "2",
        "INLET_EGRESS__ALLOW_HOSTS": '["127.0.0.1"]',  # the echoing source listens there
        "INLET_SOURCE_RETRY__BACKOFF_SECONDS": "0",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "inlet.cli", *args]
    old = os.umask(0o022)  # what a shell gives: anything tighter is the CLI's doing
    try:
        return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
    finally:
        os.umask(old)


def _found(data: bytes) -> list[str]:
    return sorted(name for name, needle in NEEDLES.items() if needle.encode() in data)


def _files(home: Path) -> list[Path]:
    return sorted(path for path in home.rglob("*") if path.is_file())


@pytest.mark.slow
def test_the_cli_shows_the_errors_without_the_secrets(runs: Runs) -> None:
    assert "answered 500" in runs.outputs[0] and "answered 401" in runs.outputs[1] and "***" in runs.outputs[1]
    assert _found("\n".join(runs.outputs).encode()) == []


@pytest.mark.slow
def test_no_file_of_the_state_folder_holds_a_secret(runs: Runs) -> None:
    """The store, Prefect's database (logs, state messages, parameters, artifacts, events) and its -wal."""
    everything = b"".join(path.read_bytes() for path in _files(runs.home))
    assert b"answered 401" in everything and b"acme-echo" in everything  # the runs and their logs are there
    assert (runs.home / "prefect" / "prefect.db").is_file() and (runs.home / "inlet.db").is_file()
    leaks = {str(path.relative_to(runs.home)): _found(path.read_bytes()) for path in _files(runs.home)}
    assert {where: found for where, found in leaks.items() if found} == {}


@pytest.mark.slow
def test_the_state_folder_is_its_owners_alone(runs: Runs) -> None:
    modes = {str(p.relative_to(runs.home)): stat.S_IMODE(p.stat().st_mode) for p in [runs.home, *runs.home.rglob("*")]}
    assert {"prefect/prefect.db", "inlet.db", "secret.key", "destination.secret", "prefect"} <= set(modes)
    assert {path: oct(mode) for path, mode in modes.items() if mode & 0o077} == {}
