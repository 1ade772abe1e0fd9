"""Scale-out on PostgreSQL (docs/scale-out.md): tenants x 2 connections, two workers of each kind.

The suite runs 12 tenants (24 connections), enough to make both workers of each kind share the work; the
100-connection size of docs/scale-out.md is a benchmark: `SCALE_OUT_TENANTS=50 pytest
tests/integration/test_scale_out.py`.

The Prefect server and the inlet store run on the PostgreSQL at 127.0.0.1:5432; the deployments come from
prefect.yaml through the Prefect CLI; two process workers (`python -m flows.worker`, inlet's: a run is a fork of a
server that imported Prefect and the flows) on the `inlet-process` pool share the full imports. Webhooks then change
every source: 90% of the connections' go to a receiver that submits `apply-inbox` to two task workers (the
sub-second path), 10% to a receiver whose events start `incremental-import` flow runs through the deployment's
trigger, on the process workers (a process per run, so only a few). One run at a time per connection throughout. At
the end, every tenant's records are in the team's app exactly once, with no change applied twice.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.simulation import SimulatorBase
from inlet.settings import get_settings
from tests.conftest import DatabaseFactory
from tests.support.farm import FarmConnection, build_farm, farm_connections
from tests.support.progress import wait_for_progress
from tests.support.scale_stack import ScaleStack, scale_stack
from tests.support.serving import serve_in_thread
from tests.support.webhooks import HubSpotChange, hubspot_delivery

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TENANTS, RECORDS = int(os.environ.get("SCALE_OUT_TENANTS", "12")), 30
BY_DEPLOYMENT = max(2, TENANTS // 5)  # connections whose changes run as incremental-import flow runs (10 of 100)
FAIR_SHARE = max(2, TENANTS // 5)  # each process worker's least share of the full imports (10 of 100)
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
STALL_SECONDS = 240  # waits fail when nothing moves for this long, never on a total deadline (CI shares 2 cores)


@pytest.mark.timeout(3600)  # a last resort against a hang; the waits below fail on a stall long before
def test_two_workers_share_the_tenants_and_every_record_arrives_exactly_once(
    tmp_path: Path, pg_databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    farm_app, sims = build_farm(TENANTS, RECORDS)
    connections = farm_connections(TENANTS)
    with serve_in_thread(farm_app) as farm, scale_stack(tmp_path, pg_databases(), pg_databases()) as stack:
        _add_connections(stack, farm, connections, sims, monkeypatch)

        full_runs = _wait_for_runs(stack.api, [_start_full_import(stack.api, c) for c in connections])
        assert Counter(run["state"]["type"] for run in full_runs) == {"COMPLETED": len(connections)}
        shares = _runs_per_worker(stack, full_runs)
        assert min(shares.values()) >= FAIR_SHARE, f"the workers did not share the work: {shares}"
        _wait_until_app_matches(stack.app, connections, sims)

        by_deployment, by_task_worker = connections[:BY_DEPLOYMENT], connections[BY_DEPLOYMENT:]
        _change_every_source_and_send_webhooks(stack.receivers["deployment"], by_deployment, sims)
        _change_every_source_and_send_webhooks(stack.receivers["task-worker"], by_task_worker, sims)
        _wait_until_app_matches(stack.app, connections, sims)
        applied = _wait_for_task_runs(stack.api, "apply-inbox")
        assert {run["state"]["type"] for run in applied} == {"COMPLETED"}
        assert {run["name"].rsplit("/", 1)[-1] for run in applied} == {c.connection for c in by_task_worker}
        flow_runs = _wait_for_runs(stack.api, _flow_run_ids(stack.api, "incremental-import"))
        assert {run["state"]["type"] for run in flow_runs} == {"COMPLETED"}
        assert {run["parameters"]["connection"] for run in flow_runs} == {c.connection for c in by_deployment}
        finished = {
            name: sum(httpx.get(url, timeout=10).json()["finished"].values())
            for name, url in stack.task_workers.items()
        }
        assert min(finished.values()) >= max(1, TENANTS // 10) and sum(finished.values()) == len(applied), finished

        stats = httpx.get(stack.app + "/stats", timeout=10).json()
        assert stats["duplicates"] == 0, stats
        assert stats["records"] == len(connections) * (RECORDS + 1)  # +2 created, -1 deleted per connection
        _assert_every_slot_is_free(stack.api, connections)
        print("CPU seconds per component:", stack.cpu_seconds(), "; flow runs:", len(full_runs) + len(flow_runs))


def _add_connections(
    stack: ScaleStack,
    farm: str,
    connections: list[FarmConnection],
    sims: dict[str, SimulatorBase],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import SecretStr

    from inlet.store import Vault, add_connection, add_tenant, open_store

    for name in ("INLET_HOME", "INLET_DATABASE_URL", "INLET_SECRET_KEY"):
        monkeypatch.setenv(name, stack.env[name])
    get_settings.cache_clear()
    settings = get_settings()
    engine, vault = open_store(settings.store_url), Vault.from_settings(settings)
    for tenant in sorted({c.tenant for c in connections}):
        add_tenant(engine, tenant)
    for c in connections:
        parameters, credentials = sims[c.connection].connection(f"{farm}/{c.connection}")
        credentials["webhook_secret"] = SecretStr(c.webhook_secret)
        add_connection(
            engine,
            vault,
            tenant_id=c.tenant,
            connection_id=c.connection,
            app=c.app,
            parameters=parameters,
            credentials=credentials,
        )
    engine.dispose()


def _start_full_import(api: str, c: FarmConnection) -> str:
    deployment = httpx.get(f"{api}/deployments/name/full-import/full-import", timeout=10).json()
    body = {"parameters": {"job": {"tenant": c.tenant, "connection": c.connection}}}
    answer = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _flow_run_ids(api: str, flow_name: str) -> list[str]:
    return [run["id"] for run in _filter(api, "flow_runs", {"flows": {"name": {"any_": [flow_name]}}})]


def _wait_for_task_runs(api: str, task_name: str) -> list[dict[str, Any]]:
    """The runs of this task, once none is still scheduled, pending or running."""

    def measure() -> tuple[bool, Hashable, list[dict[str, Any]]]:
        runs = _filter(api, "task_runs", {"task_runs": {"name": {"like_": task_name + "/"}}})
        states = Counter(run["state"]["type"] for run in runs)
        done = bool(runs) and all(run["state"]["type"] in FINAL for run in runs)
        return done, tuple(sorted(states.items())), runs

    return wait_for_progress(measure, stall_seconds=STALL_SECONDS, what=f"{task_name} task runs")


def _wait_for_runs(api: str, ids: list[str]) -> list[dict[str, Any]]:
    """These flow runs once all are final; fails only when no run changes state for STALL_SECONDS."""

    def measure() -> tuple[bool, Hashable, list[dict[str, Any]]]:
        runs = _filter(api, "flow_runs", {"flow_runs": {"id": {"any_": ids}}})
        states = Counter(run["state"]["type"] for run in runs)
        done = len(runs) == len(ids) and all(run["state"]["type"] in FINAL for run in runs)
        return done, tuple(sorted(states.items())), runs

    return wait_for_progress(measure, stall_seconds=STALL_SECONDS, interval=2, what=f"{len(ids)} flow runs")


def _filter(api: str, kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the filter matches, page by page (the API returns 200 at most)."""
    found: list[dict[str, Any]] = []
    while True:
        page = httpx.post(f"{api}/{kind}/filter", json={**body, "limit": 200, "offset": len(found)}, timeout=30)
        page.raise_for_status()
        found += page.json()
        if len(page.json()) < 200:
            return found


def _runs_per_worker(stack: ScaleStack, runs: list[dict[str, Any]]) -> dict[str, int]:
    """How many of these runs each worker started, from its log: the runs it submitted, less those whose
    submission the server aborted because the other worker had taken them first."""
    ids = {run["id"] for run in runs}
    shares: dict[str, int] = {}
    for worker, log in stack.worker_logs.items():
        text = log.read_text(errors="replace")
        submitted = set(re.findall(r"submitting flow run '([0-9a-f-]{36})'", text))
        aborted = set(re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", text))
        shares[worker] = len((submitted - aborted) & ids)
    assert sum(shares.values()) == len(ids), f"the workers' logs account for other runs than these: {shares}"
    return shares


def _change_every_source_and_send_webhooks(
    receiver: str, connections: list[FarmConnection], sims: dict[str, SimulatorBase]
) -> None:
    """At every source: 2 records created, 2 updated, 1 deleted; then the app's webhooks for them."""
    with httpx.Client(timeout=30) as http:
        for c in connections:
            sim = sims[c.connection]
            created, updated, deleted = sim.create(2), sim.update(2), sim.delete(sim.ids()[-3:-2])
            url = f"{receiver}/webhooks/{c.app}/{c.tenant}/{c.connection}"
            if c.app == "hubspot":
                changes: list[HubSpotChange] = [("creation", i) for i in created]
                changes += [("propertyChange", i) for i in updated]
                body, headers = hubspot_delivery(url, c.webhook_secret, [*changes, ("deletion", deleted[0])])
                deliveries = [(body, headers)]
            else:
                auth = tuple(c.webhook_secret.split(":", 1))
                actions = [(i, "create") for i in created] + [(i, "change") for i in updated] + [(deleted[0], "delete")]
                requests = [sim.webhook(i, action, auth=auth) for i, action in actions]  # type: ignore[attr-defined]
                deliveries = [(r.body, dict(r.headers)) for r in requests]
            for body, headers in deliveries:
                answer = http.post(url, content=body, headers=headers)
                assert answer.status_code == 200, f"{c.connection}: {answer.status_code} {answer.text}"


def _wait_until_app_matches(app: str, connections: list[FarmConnection], sims: dict[str, SimulatorBase]) -> None:
    """Every connection's live records at the app equal its source's, field for field (email, title).

    Progress is the app's whole state: the wait fails only when the app stops changing while it still differs.
    """

    def measure() -> tuple[bool, Hashable, str]:
        rows = httpx.get(app + "/records", timeout=60).json()
        at_app: dict[str, dict[str, tuple[Any, Any]]] = {c.connection: {} for c in connections}
        for row in rows:
            record = row["record"]
            at_app[row["connection"]][row["external_id"]] = (record.get("email"), record.get("title"))
        differing = [c.connection for c in connections if at_app[c.connection] != _source(sims[c.connection])]
        state = (len(rows), len(differing), hash(str(sorted(map(str, rows)))))
        return not differing, state, f"{len(differing)} connections differ from their source, e.g. {differing[:5]}"

    wait_for_progress(measure, stall_seconds=STALL_SECONDS, interval=2, what="the app catching up")


def _source(sim: SimulatorBase) -> dict[str, tuple[Any, Any]]:
    people = {external_id: sim.find(external_id) for external_id in sim.ids()}
    return {external_id: (p.email, p.title) for external_id, p in people.items() if p is not None}


def _assert_every_slot_is_free(api: str, connections: list[FarmConnection]) -> None:
    limits = httpx.post(f"{api}/v2/concurrency_limits/filter", json={"limit": 200}, timeout=30).json()
    named = {limit["name"]: limit for limit in limits if limit["name"].startswith("inlet-connection-")}
    # `<slot>-wanted` counts the runs waiting for a slot (flows/slot_wanted.py): made on a connection's first wait
    wanted = {name: limit for name, limit in named.items() if name.endswith("-wanted")}
    slots = {name: limit for name, limit in named.items() if name not in wanted}
    assert set(slots) == {f"inlet-connection-{c.connection}" for c in connections}
    assert {(limit["limit"], limit["active_slots"]) for limit in slots.values()} == {(1, 0)}
    assert {name.removesuffix("-wanted") for name in wanted} <= set(slots)
    assert all(limit["active_slots"] == 0 for limit in wanted.values()), "a run still says it waits for a slot"
