"""Fixtures that start real external apps (Kinto, json-server) on 127.0.0.1 and stop them by PID."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bench.real_apps import JsonServer, require_json_server, start_json_server
from inlet.local import stop_process
from tests.support.real_apps import KintoServer, require_kinto, start_kinto

JsonServerFactory = Callable[[int], JsonServer]


@pytest.fixture(scope="session")
def kinto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KintoServer]:
    """One Kinto (memory backend) for the whole session: admin:s3cret, bucket ``crm``, collection ``users``.

    State is shared between tests; use ``kinto_collection`` for an empty collection of your own.
    """
    require_kinto()
    server = start_kinto(tmp_path_factory.mktemp("kinto"))
    try:
        yield server
    finally:
        stop_process(server.proc)


@pytest.fixture
def kinto_collection(kinto_server: KintoServer) -> KintoServer:
    """A view of the session's Kinto on a new, empty collection in bucket ``crm``."""
    return kinto_server.with_collection()


@pytest.fixture
def json_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonServerFactory]:
    """``factory(n)`` starts a json-server whose db.json holds ``n`` users (ids 1..n) in its own tmp dir.

    Every server started through the factory is stopped at the end of the test.
    """
    require_json_server()
    started: list[JsonServer] = []

    def factory(users: int) -> JsonServer:
        server = start_json_server(tmp_path_factory.mktemp("json-server"), users)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            stop_process(server.proc)
