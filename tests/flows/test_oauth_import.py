"""Full imports over OAuth on a real Prefect server: tokens expiring mid-run, a revoked grant, and no secret
anywhere a person or the Prefect API can read it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterName,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker
from pydantic import SecretStr

from connectors.errors import NeedsReauth, RetryableError
from connectors.simulation import SIM_CLIENT_ID
from flows.full_import import ImportSummary, full_import
from flows.incremental_import import incremental_import
from flows.poll_changes import poll_changes
from flows.runtime import ImportJob
from inlet.oauth import finish_connect, register_client, start_connect
from inlet.service import connection_status
from inlet.settings import get_settings
from inlet.store import Vault, open_store
from tests.conftest import InletEnv, InletEnvFactory

CANARY = "CANARY7f3q"


def connect_with_oauth(env: InletEnv, connection: str, client_secret: str = "sim-client-secret") -> None:
    """What a tenant does: open the consent link, come back to the callback with a code."""
    engine, vault = open_store(env.settings.store_url), Vault.from_settings(env.settings)
    register_client(engine, vault, "hubspot", SIM_CLIENT_ID, SecretStr(client_secret))
    url = start_connect(
        engine,
        vault,
        env.settings,
        tenant_id="acme",
        app="hubspot",
        connection_id=connection,
        parameters={"base_url": env.simulator, "login_url": env.simulator},
    )
    query = parse_qs(urlsplit(httpx.get(url, timeout=10).headers["location"]).query)

    async def come_back() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            await finish_connect(engine, vault, env.settings, state=query["state"][0], code=query["code"][0], http=http)

    asyncio.run(come_back())


def oauth(env: InletEnv, **control: Any) -> dict[str, Any]:
    response = httpx.post(f"{env.simulator}/_sim/oauth", json=control, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def run_import(connection: str) -> ImportSummary:
    return asyncio.run(full_import(ImportJob(tenant="acme", connection=connection)))


async def _failed_task_runs(flow_run_id: str) -> int:
    async with get_client() as client:
        runs = await client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]))
        )
    return sum(1 for run in runs if run.state is not None and run.state.is_failed())


@pytest.mark.slow
def test_ten_thousand_records_with_tokens_expiring_every_five_seconds(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=10_000, sim_args=("--token-lifetime", "5"))
    for name, value in {"REQUESTS": "10", "PER_SECONDS": "1"}.items():  # 100 pages paced over ~10 s, not bursts
        monkeypatch.setenv(f"INLET_SOURCE_BUDGET__{name}", value)
    get_settings.cache_clear()
    connect_with_oauth(env, "acme-oauth-10k")
    started = time.perf_counter()
    summary = run_import("acme-oauth-10k")
    seconds = time.perf_counter() - started
    grants = oauth(env)
    print(f"\n10k records, 5 s tokens: {seconds:.1f}s, {grants['refresh_token']} refreshes, {summary.pages} pages")
    assert (summary.records_seen, summary.delivered, summary.pages) == (10_000, 10_000, 100)
    assert seconds > 5 and grants["refresh_token"] >= 1 and grants["refused"] == 0  # it outlived its first token
    assert asyncio.run(_failed_task_runs(summary.flow_run_id)) == 0
    assert env.app_stats()["records"] == 10_000


def test_a_revoked_grant_fails_fast_marks_the_connection_and_spares_the_token_endpoint(
    inlet_env: InletEnvFactory,
) -> None:
    env = inlet_env(records=50)
    connect_with_oauth(env, "acme-revoked")
    oauth(env, revoke_all=True)
    with pytest.raises(NeedsReauth, match="connect again"):
        run_import("acme-revoked")
    assert oauth(env)["refused"] == 1
    requests = env.sim("stats")["requests"]
    for _ in range(2):  # the next scheduled runs: no API request, no token endpoint call
        with pytest.raises(NeedsReauth, match="needs re-authorization"):
            run_import("acme-revoked")
    with pytest.raises(NeedsReauth, match="needs re-authorization"):
        asyncio.run(poll_changes("acme", "acme-revoked"))
    with pytest.raises(NeedsReauth, match="needs re-authorization"):
        asyncio.run(incremental_import("acme", "acme-revoked"))
    assert oauth(env)["refused"] == 1 and env.sim("stats")["requests"] == requests
    status = {row["connection"]: row["auth"] for row in connection_status(open_store(env.settings.store_url))}
    assert status == {"acme-hubspot": "credentials", "acme-revoked": "oauth:needs_reauth"}
    assert asyncio.run(_summaries("acme-revoked")).count("needs_reauth") == 5


async def _summaries(connection: str) -> str:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"/{connection}"))
        )
        flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id for run in runs]))
        return " ".join(str(a.data) for a in await client.read_artifacts(artifact_filter=flt) if a.type == "table")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def every_log_line() -> Iterator[_Collect]:
    """Every log record of this process at DEBUG, tracebacks included."""
    handler = _Collect()
    names = ["", "prefect", "connectors", "inlet", "flows", "mappings", "httpx", "httpcore"]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    for name in names:
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(levels[name])


def test_no_token_or_client_secret_reaches_logs_artifacts_errors_or_the_prefect_api(
    inlet_env: InletEnvFactory, every_log_line: _Collect, tmp_path: Path
) -> None:
    env = inlet_env(records=250)
    oauth(env, prefix=f"{CANARY}-tok", client_secret=f"{CANARY}-client-secret")
    connect_with_oauth(env, "acme-secrets", client_secret=f"{CANARY}-client-secret")
    errors: list[str] = []
    oauth(env, expire_access_tokens=True)  # the run refreshes on its first 401
    run_import("acme-secrets")
    env.sim("faults", {"status_500": 20})  # a failing run: the source errors past its retries
    with pytest.raises(RetryableError) as failed:
        run_import("acme-secrets")
    errors.append(str(failed.value))
    env.sim("reset", {})
    oauth(env, revoke_all=True, expire_access_tokens=True)  # a run that fails on the refused refresh
    with pytest.raises(NeedsReauth) as revoked:
        run_import("acme-secrets")
    errors.append(str(revoked.value))
    assert oauth(env)["refresh_token"] >= 1
    seen = " ".join([*every_log_line.lines, *errors, asyncio.run(_prefect_api_text("acme-secrets"))])
    assert "acme-secrets" in seen and CANARY not in seen
    secret = f"{CANARY}-client-secret"  # and not in the forms it travels in (tests/security has the full matrix)
    encoded = [base64.b64encode(f"{SIM_CLIENT_ID}:{secret}".encode()), base64.b64encode(secret.encode())]
    assert not [form for form in encoded if form.decode() in seen or form.decode().rstrip("=") in seen]
    store = Path(env.settings.store_url.removeprefix("sqlite:///")).read_bytes()
    assert CANARY.encode() not in store  # encrypted at rest


async def _prefect_api_text(connection: str) -> str:
    """Flow-run names and parameters, task-run names and inputs, every log line and every artifact of the
    connection's runs."""
    await asyncio.to_thread(APILogWorker.drain_all, timeout=10)
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"/{connection}"))
        )
        ids = [run.id for run in runs]
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        tasks = await client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids)))
    parts = [f"{run.name} {run.parameters} {run.state}" for run in runs]
    parts += [f"{task.name} {task.task_inputs} {task.state}" for task in tasks]
    parts += [log.message for log in logs] + [f"{a.data} {a.description}" for a in artifacts]
    assert len(runs) == 3 and logs and artifacts and tasks
    return " ".join(parts)
