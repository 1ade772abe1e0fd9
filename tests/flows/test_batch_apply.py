"""A sync-polls batch applies its connections' changes in its own task run, on real processes (HubSpot simulator,
demo app, Prefect server): no apply-inbox run per connection, one artifact for the batch, single flight kept, and
every connection's records in the app equal to a fresh full import of the source."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    TaskRunFilter,
    TaskRunFilterName,
)

from flows.artifacts import artifact_key
from flows.poll_batch import PollBatch, PollsFailed, sync_polls
from flows.single_flight import single_flight
from inlet.local import stop_process
from inlet.service import open_installation, sync_status
from inlet.store import HeardChange, inbox, open_store
from tests.conftest import SIM_TOKEN, InletEnv, InletEnvFactory
from tests.support.connections import connect, import_full

TENANT = "acme"
FIRST, SECOND, HELD = "acme-hubspot", "acme-second", "acme-held"
_oracles = itertools.count()


def _app_state(env: InletEnv, connection: str) -> dict[str, Any]:
    return {r["external_id"]: r["record"] for r in env.app_records(connection=connection)}


def _source_state(env: InletEnv) -> dict[str, Any]:
    """What a fresh full import of the simulator gives now, through a connection of its own."""
    oracle = f"acme-oracle-{next(_oracles)}"
    connect(env, oracle, "hubspot", {"base_url": env.simulator}, token=SIM_TOKEN)
    import_full(oracle)
    return _app_state(env, oracle)


def _three_connections(env: InletEnv) -> list[tuple[str, str, str]]:
    """FIRST, SECOND and HELD, each reading the simulator and fully imported; the batch's targets."""
    for connection in (SECOND, HELD):
        connect(env, connection, "hubspot", {"base_url": env.simulator}, token=SIM_TOKEN)
    for connection in (FIRST, SECOND, HELD):
        import_full(connection)
    return [(TENANT, connection, "users") for connection in (FIRST, SECOND, HELD)]


async def _apply_inbox_runs() -> set[str]:
    """The ids of the apply-inbox runs of these connections' names (other test modules of this Prefect server's
    session may have made some: a test compares the sets before and after)."""
    async with get_client() as client:
        names = [f"apply-inbox/{TENANT}/{c}" for c in (FIRST, SECOND, HELD)]
        runs = await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)))
    return {str(run.id) for run in runs}


async def _batch_rows() -> list[dict[str, Any]]:
    """The rows of the latest batch artifact for hubspot."""
    key = artifact_key("poll-batch", "hubspot", "summary")
    async with get_client() as client:
        latest_of_key = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        [latest] = await client.read_latest_artifacts(artifact_filter=latest_of_key)
    rows: list[dict[str, Any]] = json.loads(str(latest.data))  # a table artifact's rows, as JSON
    return rows


def test_a_batch_applies_its_connections_in_its_own_run_and_leaves_a_held_one_to_its_next_poll(
    inlet_env: InletEnvFactory,
) -> None:
    env = inlet_env(records=30)
    targets = _three_connections(env)
    engine = open_store(env.settings.store_url)
    ids = sorted(_app_state(env, FIRST))
    earlier_runs = asyncio.run(_apply_inbox_runs())
    env.sim("mutate", {"create": 3, "update": ids[:4], "delete": ids[4:7]})
    [late] = env.sim("mutate", {"create": 1})["created"]
    waiting = HeardChange(TENANT, SECOND, "users", late, "upsert", "webhook", source_event_id="w-second")
    inbox.add(engine, [waiting])  # a webhook's event whose notice was lost: the batch applies it with the poll's

    async def batch_while_held() -> PollBatch:
        async with single_flight(HELD):  # as a webhook's apply-inbox run, an import or a reconciliation holds it
            return await sync_polls("hubspot", f"{FIRST}+2", targets)

    held = asyncio.run(batch_while_held())
    source = _source_state(env)
    assert (held.polled, held.held, held.failed) == (3, [HELD], {})
    assert held.applied == {FIRST: 11, SECOND: 12}  # 4 creates, 4 updates, 3 deletes; SECOND's webhook event too
    assert _app_state(env, FIRST) == source and _app_state(env, SECOND) == source
    assert _app_state(env, HELD) != source and inbox.depth(engine, HELD) == 11  # left, not lost
    assert asyncio.run(_apply_inbox_runs()) == earlier_runs  # the batch made none
    rows = {row["connection"]: row for row in asyncio.run(_batch_rows())}
    assert rows[FIRST]["inbox_events"] == 11 and (rows[FIRST]["created"], rows[FIRST]["deleted"]) == (4, 3)
    assert rows[HELD]["outcome"].startswith("held by another run")

    after = asyncio.run(sync_polls("hubspot", HELD, [targets[2]]))  # the slot is free: the next poll applies
    assert after.applied == {HELD: 11} and inbox.depth(engine, HELD) == 0
    assert _app_state(env, HELD) == _source_state(env) and env.app_stats()["duplicates"] == 0


def test_a_batch_whose_app_stops_taking_events_fails_naming_the_connection_and_keeps_the_events(
    inlet_env: InletEnvFactory,
) -> None:
    env = inlet_env(records=20)
    import_full(FIRST)
    created = env.sim("mutate", {"create": 2})["created"]
    stop_process(env.processes.pop("app"))
    with pytest.raises(PollsFailed, match=f"1 of 1 polls failed: {FIRST}: DeliveryError") as failed:
        asyncio.run(sync_polls("hubspot", FIRST, [(TENANT, FIRST, "users")]))
    assert failed.value.batch.applied == {FIRST: 2} and len(created) == 2
    [row] = sync_status(open_installation(env.settings))
    assert "DeliveryError" in row["last_poll_error"]
