"""A connection kept warm in a task worker (flows.warm): what arrives while an apply-inbox run stays on its connection
is applied once, a change racing the run's departure is not stranded, and an import gets the connection's slot while
a run is warm. On real processes (HubSpot simulator, demo app, Prefect server)."""

from __future__ import annotations

import asyncio
import sys
from subprocess import DEVNULL
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from prefect.client.schemas.objects import TaskRun
from prefect.task_worker import TaskWorker

from flows import incremental_import as incremental
from flows import warm
from flows.events import emit_changed
from flows.full_import import full_import
from flows.incremental_import import IncrementalSummary, apply_inbox
from flows.runtime import ImportJob
from flows.single_flight import take_turn
from inlet.settings import get_settings
from inlet.store import HeardChange, Store, inbox, open_store
from tests.conftest import SIM_TOKEN, InletEnv, InletEnvFactory
from tests.support.hubspot_source import hubspot_emails

TENANT, CONNECTION = "acme", "acme-hubspot"
JOB = ImportJob(tenant=TENANT, connection=CONNECTION)


def _heard(store: Store, kind: str, ids: list[str], event: str) -> None:
    """What the receiver writes for a webhook naming these records."""
    inbox.add(
        store,
        [HeardChange(TENANT, CONNECTION, "users", i, kind, "webhook", source_event_id=f"{event}-{i}") for i in ids],
    )


def _source_emails(env: InletEnv) -> dict[str, str]:
    return hubspot_emails(env.simulator, SIM_TOKEN)


def _app_emails(env: InletEnv) -> dict[str, str]:
    return {r["external_id"]: r["record"]["email"] for r in env.app_records(connection=CONNECTION)}


async def _apply_inbox_runs() -> list[TaskRun]:
    name = TaskRunFilter(name=TaskRunFilterName(like_="apply-inbox"))  # a delayed run is named when it starts
    async with get_client() as client:
        return await client.read_task_runs(task_run_filter=name)


@flow
async def _warm_run(warm_seconds: float) -> IncrementalSummary:
    return await apply_inbox(TENANT, CONNECTION, warm_seconds=warm_seconds)


def test_a_change_that_lands_as_the_warm_run_leaves_is_applied_by_it(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: a run that starts while the connection is warm leaves its change to the warm run; the warm run
    stops watching right after. It looks at the inbox once more, so the change is applied, once."""
    env = inlet_env(records=20)
    asyncio.run(full_import(JOB))
    store = open_store(env.settings.store_url)
    first, late = env.sim("mutate", {"create": 2})["created"]
    _heard(store, "upsert", [first], "first")
    newcomer_left: list[bool] = []

    async def a_change_lands_as_the_spell_ends(engine: Store, connection: str, idle_seconds: float) -> bool:
        if not newcomer_left:
            _heard(store, "upsert", [late], "late")  # the receiver's commit, then its run starts:
            async with take_turn(connection) as ours:
                newcomer_left.append(not ours)  # the connection is warm: the newcomer leaves its change
        return False  # and the warm spell ends without having seen it

    monkeypatch.setattr(incremental, "changes_arrive", a_change_lands_as_the_spell_ends)
    summary = asyncio.run(_warm_run(warm_seconds=60))
    assert newcomer_left == [True] and summary.inbox_events == 2 and summary.created == 2
    assert {first, late} <= set(_app_emails(env)) and inbox.depth(store, CONNECTION) == 0
    assert env.app_stats()["duplicates"] == 0


def test_an_import_gets_the_slot_a_warm_run_holds_without_waiting_for_its_spell(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm run keeps the connection's slot between drains; a full import asking for it here (the task worker's
    scheduled imports and reconciliations) and one in another process (the CLI, a deployment run) each get it as
    soon as the warm run sees them wait, not after its 600 s spell."""
    env = inlet_env(records=30)
    asyncio.run(full_import(JOB))
    store = open_store(env.settings.store_url)
    watching: list[asyncio.Event] = []  # one per run: an event belongs to its loop
    watch = warm.changes_arrive

    async def watched(engine: Store, connection: str, idle_seconds: float) -> bool:
        watching[0].set()
        return await watch(engine, connection, idle_seconds)

    monkeypatch.setattr(incremental, "changes_arrive", watched)
    command = [sys.executable, "-m", "inlet.cli", "import", "full", "-t", TENANT, "-c", CONNECTION]

    @flow
    async def import_while_warm(elsewhere: bool) -> tuple[IncrementalSummary, int]:
        watching[:] = [asyncio.Event()]
        staying = asyncio.ensure_future(apply_inbox(TENANT, CONNECTION, warm_seconds=600))
        await watching[0].wait()  # progress: the run drained the inbox and keeps the connection warm
        if elsewhere:
            cli = await asyncio.create_subprocess_exec(*command, env=env.env, stdout=DEVNULL, stderr=DEVNULL)
            code = await cli.wait()
        else:
            code = 0 if (await full_import(JOB)).complete else 1
        return await staying, code

    for elsewhere in (False, True):
        _heard(store, "upsert", env.sim("mutate", {"create": 1})["created"], f"w{elsewhere}")
        applied, code = asyncio.run(import_while_warm(elsewhere))
        assert code == 0 and applied.created == 1
    assert _app_emails(env) == _source_emails(env) and env.app_stats()["duplicates"] == 0


def test_webhooks_on_a_warm_connection_bring_the_app_to_the_source_once(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end on a task worker: creates, updates and deletes heard in waves while runs keep the connection
    warm; the app ends with the source's records and emails, each event applied once."""
    env = inlet_env(records=40)
    asyncio.run(full_import(JOB))
    store = open_store(env.settings.store_url)
    monkeypatch.setenv("INLET_INCREMENTAL_RUNNER", "task-worker")
    monkeypatch.setenv("INLET_WARM_SECONDS", "1")
    get_settings.cache_clear()
    ids = sorted(_app_emails(env))

    async def waves() -> set[str]:
        earlier = {run.id for run in await _apply_inbox_runs()}  # the runs of this module's other tests
        worker = TaskWorker(apply_inbox)
        serving = asyncio.ensure_future(worker.astart())
        for wave in range(4):
            mutated: dict[str, Any] = env.sim(
                "mutate",
                {
                    "create": 2,
                    "update": {i: {"email": f"wave{wave}-{i}@example.org"} for i in ids[wave * 3 : wave * 3 + 3]},
                    "delete": ids[20 + wave * 2 : 22 + wave * 2],
                },
            )
            _heard(store, "upsert", mutated["created"] + mutated["updated"], f"u{wave}")
            _heard(store, "deleted", mutated["deleted"], f"d{wave}")
            await asyncio.to_thread(emit_changed, TENANT, CONNECTION)
            while inbox.depth(store, CONNECTION):  # progress: this wave applied (by a warm run, or its own)
                assert not serving.done(), "the task worker stopped"
                await asyncio.sleep(0.05)
        try:
            while True:  # progress: every run this test submitted has ended
                runs = [run for run in await _apply_inbox_runs() if run.id not in earlier]
                if runs and all(run.state is not None and run.state.is_final() for run in runs):
                    return {str(run.state_name) for run in runs}
                await asyncio.sleep(0.2)
        finally:
            serving.cancel()

    assert asyncio.run(waves()) == {"Completed"}
    assert _app_emails(env) == _source_emails(env) and env.app_stats()["duplicates"] == 0


def test_notifications_before_the_submitted_run_starts_submit_no_other_run(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the apply-inbox run submitted for a connection has not started, a notification submits nothing: that run
    reads the inbox after the change was committed. Three webhooks, one run, every change applied once."""
    env = inlet_env(records=20)
    asyncio.run(full_import(JOB))
    store = open_store(env.settings.store_url)
    monkeypatch.setenv("INLET_INCREMENTAL_RUNNER", "task-worker")
    monkeypatch.setenv("INLET_WARM_SECONDS", "0")
    get_settings.cache_clear()
    earlier = {run.id for run in asyncio.run(_apply_inbox_runs())}
    created = env.sim("mutate", {"create": 3})["created"]
    for n, external_id in enumerate(created):  # no task worker yet: the first run stays scheduled
        _heard(store, "upsert", [external_id], f"burst{n}")
        emit_changed(TENANT, CONNECTION)
    submitted = [run for run in asyncio.run(_apply_inbox_runs()) if run.id not in earlier]

    async def serve() -> set[str]:
        worker = TaskWorker(apply_inbox)
        serving = asyncio.ensure_future(worker.astart())
        try:
            while True:  # progress: the run has ended
                runs = [run for run in await _apply_inbox_runs() if run.id not in earlier]
                assert not serving.done(), "the task worker stopped"
                if all(run.state is not None and run.state.is_final() for run in runs):
                    return {str(run.state_name) for run in runs}
                await asyncio.sleep(0.2)
        finally:
            serving.cancel()

    assert len(submitted) == 1 and asyncio.run(serve()) == {"Completed"}
    assert set(created) <= set(_app_emails(env)) and inbox.depth(store, CONNECTION) == 0
    assert _app_emails(env) == _source_emails(env) and env.app_stats()["duplicates"] == 0
