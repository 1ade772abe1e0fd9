"""The deliver-outbox flow on the Prefect test server: the scheduled sweep, its concurrency limit and artifact."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import update

from flows.deliver_outbox import deliver_outbox
from flows.single_flight import single_flight
from inlet.store import (
    HeardChange,
    InboxEvent,
    MappedRecord,
    PageScope,
    create_store_engine,
    inbox,
    outbox,
    utcnow,
    write_page,
)
from tests.conftest import InletEnvFactory

SCOPE = PageScope("acme", "acme-hubspot", "users", generation="gen-1", run_id="run-1")


def fill_outbox(store_url: str, count: int) -> None:
    records = [MappedRecord(str(n), {"email": f"user{n}@example.org"}, None) for n in range(count)]
    write_page(create_store_engine(store_url), SCOPE, records, next_request=None)


async def run_sweep() -> tuple[Any, dict[str, Any], list[int]]:
    """Run deliver-outbox without parameters; its result, artifacts by key and the destination limits."""
    state = await deliver_outbox(return_state=True)
    result = await state.aresult()
    async with get_client() as client:
        flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        artifacts = {a.key or "": a.data for a in await client.read_artifacts(artifact_filter=flt)}
        limits = [g.limit for g in await _every_limit(client) if g.name.startswith("inlet-destination-")]
    return result, artifacts, limits


async def _every_limit(client: Any) -> list[Any]:
    """Every global concurrency limit on the session's server (the client reads 10 a page; earlier tests add many)."""
    found: list[Any] = []
    while page := await client.read_global_concurrency_limits(limit=100, offset=len(found)):
        found += page
    return found


def test_the_sweep_delivers_every_due_connection_under_a_destination_limit(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=1)
    fill_outbox(env.settings.store_url, 40)
    result, artifacts, limits = asyncio.run(run_sweep())
    assert (result.delivered, result.pending_left) == (40, False) and env.app_stats()["records"] == 40
    assert limits and set(limits) == {env.settings.destination.concurrency}
    (row,) = json.loads(artifacts["delivery-status"])
    assert (row["pending"], row["parked"], row["dead"]) == (0, 0, 0)


def test_the_sweep_completes_while_the_app_is_down_and_the_figures_show_what_waits(
    inlet_env: InletEnvFactory,
) -> None:
    env = inlet_env(records=1, start_app=False)
    fill_outbox(env.settings.store_url, 5)
    result, artifacts, _ = asyncio.run(run_sweep())
    assert result.pending_left and result.delivered == 0
    assert outbox.counts(create_store_engine(env.settings.store_url)).deferred == 5
    (row,) = json.loads(artifacts["delivery-status"])
    assert (row["destination"], row["pending"], row["parked"], row["breaker"]) == (
        env.app + "/inlet/events",
        0,
        5,
        "closed",
    )


def _heard(env: Any, seconds_ago: float) -> str:
    """A change at the simulator that reached the inbox `seconds_ago`, whose notice never started a run."""
    (created,) = env.sim("mutate", {"create": 1})["created"]
    engine = create_store_engine(env.settings.store_url)
    inbox.add(engine, [HeardChange("acme", "acme-hubspot", "users", created, "upsert", "webhook")])
    with engine.begin() as db:
        db.execute(update(InboxEvent).values(received_at=utcnow() - timedelta(seconds=seconds_ago)))
    return str(created)


def _at_app(env: Any) -> set[str]:
    return {record["external_id"] for record in env.app_records()}


def test_the_sweep_applies_changes_whose_notice_was_lost(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=1)
    created = _heard(env, seconds_ago=600)
    asyncio.run(run_sweep())
    assert created in _at_app(env)
    assert inbox.depth(create_store_engine(env.settings.store_url)) == 0


def test_the_sweep_leaves_fresh_changes_and_busy_connections_to_their_runs(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=1)
    engine = create_store_engine(env.settings.store_url)
    fresh = _heard(env, seconds_ago=1)
    asyncio.run(run_sweep())
    assert fresh not in _at_app(env) and inbox.depth(engine) == 1  # its notice's run applies it

    async def sweep_while_a_run_drains() -> None:
        async with single_flight("acme-hubspot"):
            await run_sweep()

    _heard(env, seconds_ago=600)
    asyncio.run(sweep_while_a_run_drains())
    assert inbox.depth(engine) == 2  # the sweep did not wait for, nor race, the draining run
    asyncio.run(run_sweep())
    assert inbox.depth(engine) == 0 and fresh in _at_app(env)
