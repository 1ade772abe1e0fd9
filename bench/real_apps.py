"""Real, independently written apps the benchmarks and the tests both start: json-server 0.17.4 (npm), the
"dumb REST" source (``_page``/``_limit`` with an RFC 5988 ``Link`` header, hard deletes, no change tracking).

Every app runs as a child process in its own session (so its own process group), is polled over HTTP until
it answers, and is stopped by its PID: SIGTERM to its process group, SIGKILL after a grace period. The
child's stdout/stderr go to a log file, whose tail is put into the error when the app fails to start.
`start_on_free_port` is the launcher; tests/support/real_apps.py starts Kinto with it too. Nothing here is
a pytest fixture; ``tests/integration/conftest.py`` wraps these functions in fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from inlet.errors import ProcessError
from inlet.local import free_port, local_client, start_process, stop_process

__all__ = [
    "HOST",
    "JSON_SERVER_SKIP_REASON",
    "JSON_SERVER_VERSION",
    "JsonServer",
    "iter_link_pages",
    "json_server_bin",
    "make_user",
    "now_ms",
    "repo_root",
    "require_json_server",
    "start_json_server",
    "start_on_free_port",
    "write_json_server_db",
]

JSON = dict[str, Any]

HOST = "127.0.0.1"
JSON_SERVER_VERSION = "0.17.4"
JSON_SERVER_SKIP_REASON = (
    "json-server is not installed: run `make test` (it runs npm install json-server@0.17.4 into .cache/node) "
    "or set INLET_JSON_SERVER_BIN"
)
_STARTUP_ATTEMPTS = 3  # a free port can be taken between free_port() and the child's bind()


def start_on_free_port(
    build: Callable[[int], tuple[list[str], str]],
    *,
    cwd: Path,
    log_name: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[subprocess.Popen[bytes], int, float]:
    """Start ``build(port)`` = (cmd, health_url) on a free port, retrying if the child exits early."""
    error: ProcessError | None = None
    for attempt in range(_STARTUP_ATTEMPTS):
        port = free_port()
        cmd, health_url = build(port)
        started = time.perf_counter()
        try:
            proc = start_process(
                cmd, health_url, cwd=cwd, env=env, timeout=timeout, log_path=cwd / f"{log_name}-{attempt}.log"
            )
        except ProcessError as exc:
            error = exc
            continue
        return proc, port, time.perf_counter() - started
    assert error is not None
    raise error


def repo_root() -> Path:
    """The folder holding pyproject.toml, found upwards from this file."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise RuntimeError(f"no pyproject.toml above {here}")


def json_server_bin() -> Path | None:
    """``$INLET_JSON_SERVER_BIN``, else ``<repo>/.cache/node/node_modules/.bin/json-server``, else None."""
    override = os.environ.get("INLET_JSON_SERVER_BIN")
    candidates = [Path(override)] if override else []
    candidates.append(repo_root() / ".cache" / "node" / "node_modules" / ".bin" / "json-server")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def require_json_server() -> Path:
    """The json-server executable; tests that need it are skipped at collection where it is absent."""
    path = json_server_bin()
    if path is None:
        raise ProcessError(JSON_SERVER_SKIP_REASON)
    return path


def now_ms() -> int:
    return int(time.time() * 1000)


def make_user(i: int, at_ms: int | None = None) -> JSON:
    """The seed user number ``i`` (without id); createdAt/updatedAt are epoch ms."""
    at = now_ms() if at_ms is None else at_ms
    return {
        "email": f"user{i}@example.org",
        "name": f"User {i}",
        "age": 20 + i % 50,
        "createdAt": at,
        "updatedAt": at,
    }


def write_json_server_db(db_path: Path, users: int) -> None:
    """Write ``{"users": [...]}`` with ``users`` seed users, ids 1..n (instant; the server is not running)."""
    at = now_ms()
    rows = [{**make_user(i, at), "id": i + 1} for i in range(users)]
    db_path.write_text(json.dumps({"users": rows}), encoding="utf-8")


@dataclass
class JsonServer:
    """A running json-server 0.17.4 serving ``db_path`` (no --watch)."""

    base_url: str  # http://127.0.0.1:<port>
    db_path: Path
    proc: subprocess.Popen[bytes]
    startup_s: float = 0.0  # spawn → first answer, seconds

    @property
    def users_url(self) -> str:
        return f"{self.base_url}/users"

    def client(self, **kwargs: Any) -> httpx.Client:
        return local_client(base_url=self.base_url, **kwargs)

    def add_user(self, fields: Mapping[str, Any]) -> JSON:
        """POST a user; createdAt/updatedAt default to now (json-server keeps no timestamps itself)."""
        at = now_ms()
        body = {"createdAt": at, "updatedAt": at, **fields}
        with self.client() as c:
            r = c.post("/users", json=body)
            r.raise_for_status()
            return cast(JSON, r.json())

    def update_user(self, user_id: int, fields: Mapping[str, Any], *, touch: bool = True) -> JSON:
        """PATCH a user. With ``touch`` (default) also sets updatedAt to now, as a well-behaved writer would;
        ``touch=False`` sends ``fields`` only, so updatedAt stays stale (json-server does not maintain it)."""
        body = {"updatedAt": now_ms(), **fields} if touch else dict(fields)
        with self.client() as c:
            r = c.patch(f"/users/{user_id}", json=body)
            r.raise_for_status()
            return cast(JSON, r.json())

    def delete_user(self, user_id: int) -> None:
        """DELETE a user (a hard delete: afterwards GET /users/<id> is 404)."""
        with self.client() as c:
            c.delete(f"/users/{user_id}").raise_for_status()

    def stop(self, grace: float = 10.0) -> None:
        stop_process(self.proc, grace)


def start_json_server(workdir: Path, users: int, *, timeout: float = 60.0) -> JsonServer:
    """Write ``workdir/db.json`` with ``users`` seed users, then start json-server on a free port."""
    exe = json_server_bin()
    if exe is None:
        raise FileNotFoundError(JSON_SERVER_SKIP_REASON)
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "db.json"
    write_json_server_db(db_path, users)

    def build(port: int) -> tuple[list[str], str]:
        # No --watch: json-server would notice its own writes, reload and reset open connections.
        cmd = [str(exe), "--host", HOST, "--port", str(port), "--quiet", str(db_path)]
        return cmd, f"http://{HOST}:{port}/users?_limit=1"

    proc, port, startup = start_on_free_port(build, cwd=workdir, log_name="json-server", timeout=timeout)
    return JsonServer(base_url=f"http://{HOST}:{port}", db_path=db_path, proc=proc, startup_s=startup)


def iter_link_pages(client: httpx.Client, url: str) -> Iterator[httpx.Response]:
    """GET ``url`` and every ``Link: <…>; rel="next"`` after it (json-server pagination)."""
    next_url: str | None = url
    while next_url:
        r = client.get(next_url)
        r.raise_for_status()
        yield r
        link = r.links.get("next")
        next_url = link.get("url") if link else None
