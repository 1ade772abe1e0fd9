"""Pushes while the external app fails: 429 and a 503 after the write landed (no duplicate, the order kept),
and a SIGKILL of the process in the middle of a push run (nothing lost, no duplicate)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.push_outbox import push_outbox
from inlet.push import PushRequest
from inlet.service import accept_push, open_installation
from inlet.store import link_for, open_store, push_counts
from tests.conftest import InletEnv, InletEnvFactory
from tests.integration.conftest import JsonServerFactory
from tests.support.connections import connect
from tests.support.serving import serve_in_thread

pytestmark = pytest.mark.real_app


@dataclass
class Faults:
    """What the proxy does to the next writes (non-GET requests): `429` refuses, `503-late` lets the write
    through and then answers 503, as if the answer was lost; `delay` slows every write."""

    plan: list[str] = field(default_factory=list)
    delay: float = 0.0
    writes: int = 0


@contextmanager
def faulty_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    async def forward(request: Request) -> Response:
        fault = faults.plan.pop(0) if request.method != "GET" and faults.plan else None
        if request.method != "GET":
            faults.writes += 1
            await asyncio.sleep(faults.delay)
        if fault == "429":
            return Response(status_code=429, headers={"Retry-After": "0"})
        async with httpx.AsyncClient(base_url=upstream) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=request.query_params,
                content=await request.body(),
                headers={"content-type": request.headers.get("content-type", "application/json")},
            )
        if fault == "503-late":
            return Response(status_code=503)
        return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])
    with serve_in_thread(app) as url:
        yield url


def _push(env: InletEnv, *changes: Mapping[str, object]) -> None:
    request = PushRequest.model_validate(
        {"tenant": "acme", "connection": "acme-json", "data_source": "users", "changes": list(changes)}
    )
    accept_push(open_installation(env.settings), request)


def _emails(base_url: str) -> Counter[str]:
    return Counter(u["email"] for u in httpx.get(base_url + "/users", timeout=10).json())


def test_a_write_while_the_app_answers_429_then_503_makes_one_record_in_order(
    inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory
) -> None:
    env = inlet_env(records=1)
    server = json_server_factory(1)
    faults = Faults(["429", "429", "503-late"])
    with faulty_proxy(server.base_url, faults) as proxy:
        connect(env, "acme-json", "json_server", {"base_url": proxy})
        created = {"app_id": "app-1", "type": "created", "record": {"email": "ada@x.org", "fullName": "Ada"}}
        renamed = {**created, "type": "updated", "record": {"email": "ada@x.org", "fullName": "Ada King"}}
        _push(env, created, renamed)
        summary = asyncio.run(push_outbox("acme", "acme-json"))
    assert (summary.deferred, summary.failed, summary.written) == (1, 0, 2)  # 429 twice: deferred once
    assert _emails(server.base_url)["ada@x.org"] == 1  # the 503's write landed: found, not created again
    link = link_for(open_store(env.settings.store_url), "acme-json", "users", "app-1")
    assert link is not None and link.external_id is not None
    record = httpx.get(f"{server.base_url}/users/{link.external_id}", timeout=10).json()
    assert record["name"] == "Ada King"  # the update came after the create, as pushed


def test_a_sigkill_during_a_push_run_loses_nothing_and_duplicates_nothing(
    inlet_env: InletEnvFactory, json_server_factory: JsonServerFactory
) -> None:
    env = inlet_env(records=1)
    server = json_server_factory(1)
    faults = Faults(delay=0.05)
    records = 30
    with faulty_proxy(server.base_url, faults) as proxy:
        connect(env, "acme-json", "json_server", {"base_url": proxy})
        _push(
            env,
            *(
                {"app_id": f"app-{i}", "type": "created", "record": {"email": f"p{i}@x.org", "fullName": f"Person {i}"}}
                for i in range(records)
            ),
        )
        code = (
            "import asyncio; from flows.push_outbox import push_outbox; asyncio.run(push_outbox('acme', 'acme-json'))"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], env=env.env)
        try:
            while sum(_emails(server.base_url).values()) < 1 + 5:  # progress: some records are written
                assert proc.poll() is None, "the push run ended before it could be killed"
                time.sleep(0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        written_before = sum(_emails(server.base_url).values()) - 1
        assert written_before < records
        summary = asyncio.run(push_outbox("acme", "acme-json"))
    emails = _emails(server.base_url)
    assert all(emails[f"p{i}@x.org"] == 1 for i in range(records))  # every one there, none twice
    engine = open_store(env.settings.store_url)
    assert push_counts(engine, "acme-json").pending == 0 and summary.failed == 0
    assert all(link_for(engine, "acme-json", "users", f"app-{i}") is not None for i in range(records))
