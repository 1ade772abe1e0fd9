"""Start real, independently written apps (Kinto, json-server) on 127.0.0.1 for integration tests.

Every app runs as a child process in its own session (so its own process group), is polled over HTTP until
it answers, and is stopped by its PID: SIGTERM to its process group, SIGKILL after a grace period. The
child's stdout/stderr go to a log file, whose tail is put into the error when the app fails to start.

Kinto (PyPI ``kinto``, memory backend) is the "sync protocol" source: ETag/``_since``, tombstones, keyset
pagination via ``Next-Page``. json-server 0.17.4 (npm) is the "dumb REST" source: ``_page``/``_limit`` with an
RFC 5988 ``Link`` header, hard deletes, no change tracking.

Nothing here is a pytest fixture; ``tests/integration/conftest.py`` wraps these functions in fixtures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from inlet.errors import ProcessError
from inlet.local import free_port, local_client, process_log, start_process, stop_process

__all__ = [
    "JsonServer",
    "KintoServer",
    "ProcessError",
    "free_port",
    "iter_link_pages",
    "json_server_bin",
    "kinto_bin",
    "kinto_user",
    "local_client",
    "make_user",
    "now_ms",
    "process_log",
    "repo_root",
    "require_json_server",
    "require_kinto",
    "start_json_server",
    "start_kinto",
    "start_process",
    "stop_process",
    "write_json_server_db",
]

JSON = dict[str, Any]

HOST = "127.0.0.1"
KINTO_BATCH_SIZE = 25  # kinto.batch_max_requests default
JSON_SERVER_VERSION = "0.17.4"
JSON_SERVER_SKIP_REASON = (
    "json-server is not installed: run `make test` (it runs npm install json-server@0.17.4 into .cache/node) "
    "or set INLET_JSON_SERVER_BIN"
)
KINTO_SKIP_REASON = (
    "kinto is not installed next to the Python interpreter: install the dev extras "
    "(pip install -e '.[dev]', which includes kinto)"
)
_STARTUP_ATTEMPTS = 3  # a free port can be taken between free_port() and the child's bind()

_KINTO_INI_CACHE: list[str] = []  # text of the first kinto.ini written by `kinto init` in this process


def _start_on_free_port(
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


# ------------------------------------------------------------------------------------------------- Kinto


def kinto_bin() -> Path | None:
    """The ``kinto`` executable installed next to the running interpreter, or None."""
    path = Path(sys.executable).parent / "kinto"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def require_kinto() -> Path:
    """The ``kinto`` executable; tests that need it are skipped at collection where it is absent."""
    path = kinto_bin()
    if path is None:
        raise ProcessError(KINTO_SKIP_REASON)
    return path


def kinto_user(i: int) -> JSON:
    """The seed record number ``i`` for Kinto (Kinto adds id and last_modified)."""
    return {"email": f"user{i}@example.org", "name": f"User {i}", "age": 20 + i % 50}


@dataclass
class KintoServer:
    """A running Kinto (memory backend, accounts plugin) with bucket/collection created for ``username``."""

    base_url: str  # http://127.0.0.1:<port>/v1
    username: str
    password: str
    bucket: str
    collection: str
    proc: subprocess.Popen[bytes]
    startup_s: float = 0.0  # spawn → heartbeat OK, seconds

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    @property
    def collection_url(self) -> str:
        return f"{self.base_url}/buckets/{self.bucket}/collections/{self.collection}"

    @property
    def records_url(self) -> str:
        return f"{self.collection_url}/records"

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client with base_url = …/v1 and this server's Basic auth."""
        return local_client(base_url=self.base_url, auth=self.auth, **kwargs)

    def with_collection(self, collection: str | None = None) -> KintoServer:
        """Create another collection in the same bucket and return a view on it (same process).

        Lets tests share one server yet start from an empty collection. Default name: random.
        """
        name = collection or f"c{uuid.uuid4().hex[:12]}"
        with self.client() as c:
            c.put(f"/buckets/{self.bucket}/collections/{name}", json={}).raise_for_status()
        return dataclasses.replace(self, collection=name)

    def seed(self, n: int, start: int = 0) -> int:
        """Create ``n`` records user{start}… via POST /batch (25 sub-requests each); returns the count."""
        path = f"/buckets/{self.bucket}/collections/{self.collection}/records"
        created = 0
        with self.client() as c:
            for first in range(start, start + n, KINTO_BATCH_SIZE):
                last = min(start + n, first + KINTO_BATCH_SIZE)
                requests = [{"body": {"data": kinto_user(i)}} for i in range(first, last)]
                batch = {"defaults": {"method": "POST", "path": path}, "requests": requests}
                r = c.post("/batch", json=batch)
                r.raise_for_status()
                responses = cast(list[JSON], r.json()["responses"])
                created += sum(1 for sub in responses if sub["status"] == 201)
        return created

    def create(self, fields: Mapping[str, Any]) -> JSON:
        """POST one record; returns its data (with id and last_modified)."""
        with self.client() as c:
            r = c.post(self.records_url, json={"data": dict(fields)})
            r.raise_for_status()
            return cast(JSON, r.json()["data"])

    def update(self, record_id: str, fields: Mapping[str, Any]) -> JSON:
        """PATCH a record with ``fields`` (merged); returns the new data."""
        with self.client() as c:
            r = c.patch(f"{self.records_url}/{record_id}", json={"data": dict(fields)})
            r.raise_for_status()
            return cast(JSON, r.json()["data"])

    def delete(self, record_id: str) -> JSON:
        """DELETE a record; returns the tombstone ({"id", "last_modified", "deleted": true})."""
        with self.client() as c:
            r = c.delete(f"{self.records_url}/{record_id}")
            r.raise_for_status()
            return cast(JSON, r.json()["data"])

    def list_all(self, *, since: int | str | None = None, limit: int = 1000) -> list[JSON]:
        """All records oldest first (``_sort=last_modified``), following ``Next-Page``.

        With ``since`` (an ETag, quoted or not) only changes after it, tombstones included.
        """
        params: dict[str, str | int] = {"_sort": "last_modified", "_limit": limit}
        if since is not None:
            params["_since"] = str(since).strip('"')
        rows: list[JSON] = []
        with self.client() as c:
            r = c.get(self.records_url, params=params)
            while True:
                r.raise_for_status()
                rows.extend(cast(list[JSON], r.json()["data"]))
                next_page = r.headers.get("Next-Page")
                if not next_page:
                    return rows
                r = c.get(next_page)

    def stop(self, grace: float = 10.0) -> None:
        stop_process(self.proc, grace)


def start_kinto(
    workdir: Path,
    *,
    username: str = "admin",
    password: str = "s3cret",
    bucket: str = "crm",
    collection: str = "users",
    timeout: float = 60.0,
) -> KintoServer:
    """Write ``workdir/kinto.ini`` (memory backends, host 127.0.0.1), start Kinto on a free port, wait for
    ``/v1/__heartbeat__``, then create the account, bucket and collection over HTTP."""
    exe = kinto_bin()
    if exe is None:
        raise FileNotFoundError(KINTO_SKIP_REASON)
    workdir.mkdir(parents=True, exist_ok=True)
    ini = workdir / "kinto.ini"
    if not ini.exists() and _KINTO_INI_CACHE:
        # `kinto init` takes about a second; its output does not depend on the folder, so reuse it.
        ini.write_text(_KINTO_INI_CACHE[0], encoding="utf-8")
    if not ini.exists():
        init = subprocess.run(
            [
                str(exe),
                "init",
                "--ini",
                str(ini),
                "--backend",
                "memory",
                "--cache-backend",
                "memory",
                "--host",
                HOST,
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        if init.returncode != 0 or not ini.exists():
            output = init.stdout.decode(errors="replace")
            raise ProcessError(f"kinto init failed ({init.returncode}):\n{output}")
        _KINTO_INI_CACHE[:] = [ini.read_text(encoding="utf-8")]
    _check_kinto_ini(ini)

    def build(port: int) -> tuple[list[str], str]:
        cmd = [str(exe), "start", "--ini", str(ini), "--port", str(port)]
        return cmd, f"http://{HOST}:{port}/v1/__heartbeat__"

    proc, port, startup = _start_on_free_port(build, cwd=workdir, log_name="kinto", timeout=timeout)
    server = KintoServer(
        base_url=f"http://{HOST}:{port}/v1",
        username=username,
        password=password,
        bucket=bucket,
        collection=collection,
        proc=proc,
        startup_s=startup,
    )
    try:
        with local_client(base_url=server.base_url) as c:
            # Memory backend: nothing survives a restart, so the account is created over HTTP every time.
            c.put(f"/accounts/{username}", json={"data": {"password": password}}).raise_for_status()
            c.put(f"/buckets/{bucket}", json={}, auth=server.auth).raise_for_status()
            c.put(f"/buckets/{bucket}/collections/{collection}", json={}, auth=server.auth).raise_for_status()
    except BaseException:
        stop_process(proc)
        raise
    return server


def _check_kinto_ini(ini: Path) -> None:
    """Refuse to start Kinto if its ini would listen anywhere but 127.0.0.1."""
    section = ""
    for raw in ini.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[server:main]" and line.replace(" ", "").startswith(("host=", "listen=")):
            value = line.split("=", 1)[1].strip()
            if value not in (HOST, f"{HOST}:%(http_port)s"):
                raise ProcessError(f"{ini}: [server:main] {line!r} does not bind {HOST} only")


# ------------------------------------------------------------------------------------------- json-server


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

    proc, port, startup = _start_on_free_port(build, cwd=workdir, log_name="json-server", timeout=timeout)
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
