"""Start Kinto on 127.0.0.1 for integration tests: the "sync protocol" source (PyPI ``kinto``, memory backend):
ETag/``_since``, tombstones, keyset pagination via ``Next-Page``.

It is launched, polled and stopped like every real app (bench/real_apps.py, which also starts json-server for
the tests and the benchmarks). Nothing here is a pytest fixture; ``tests/integration/conftest.py`` wraps these
functions in fixtures.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from bench.real_apps import HOST, start_on_free_port
from inlet.errors import ProcessError
from inlet.local import local_client, stop_process

__all__ = [
    "KINTO_SKIP_REASON",
    "KintoServer",
    "kinto_bin",
    "kinto_user",
    "require_kinto",
    "start_kinto",
]

JSON = dict[str, Any]

KINTO_BATCH_SIZE = 25  # kinto.batch_max_requests default
KINTO_SKIP_REASON = (
    "kinto is not installed next to the Python interpreter: install the dev extras "
    "(pip install -e '.[dev]', which includes kinto)"
)

_KINTO_INI_CACHE: list[str] = []  # text of the first kinto.ini written by `kinto init` in this process


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

    # A collection may then carry a JSON schema, so a test can see Kinto refuse an invalid write (issue 20);
    # collections without one are unaffected.
    schemas = {"KINTO_EXPERIMENTAL_COLLECTION_SCHEMA_VALIDATION": "true"}
    proc, port, startup = start_on_free_port(build, cwd=workdir, log_name="kinto", env=schemas, timeout=timeout)
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
