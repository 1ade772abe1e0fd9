"""Continuity on real processes (HubSpot simulator, demo app, Prefect server): the full import's watermark,
the scheduler's due work run by a task worker, pause, and reconciliation drift."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from prefect.task_worker import TaskWorker
from sqlmodel import Session

from flows.full_import import full_import
from flows.incremental_import import incremental_import
from flows.poll_changes import poll_changes
from flows.runtime import ImportJob
from flows.scheduler import sync_connection, sync_scheduler
from inlet.service import pause, resume, set_policy, sync_status
from inlet.store import SyncPolicy, SyncState, claim_due, inbox, open_store, utcnow
from tests.conftest import SIM_TOKEN, InletEnv, InletEnvFactory

TENANT, CONNECTION = "acme", "acme-hubspot"


def app_ids(env: InletEnv) -> set[str]:
    return {r["external_id"] for r in env.app_records(connection=CONNECTION)}


def source_ids(env: InletEnv) -> set[str]:
    """The simulator's live contacts, listed as a client would."""
    ids: set[str] = set()
    url: str | None = f"{env.simulator}/crm/v3/objects/contacts?limit=100"
    while url:
        page = httpx.get(url, headers={"Authorization": f"Bearer {SIM_TOKEN}"}, timeout=10).json()
        ids |= {r["id"] for r in page["results"]}
        url = page.get("paging", {}).get("next", {}).get("link")
    return ids


def test_the_first_poll_after_a_full_import_applies_creates_updates_and_deletes(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=60)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    assert inbox.stored_since(engine, CONNECTION, "users") is not None  # the import's position
    ids = sorted(app_ids(env))
    env.sim("mutate", {"create": 3, "update": ids[:4], "delete": ids[4:9]})
    polled = asyncio.run(poll_changes(TENANT, CONNECTION))
    applied = asyncio.run(incremental_import(TENANT, CONNECTION))
    assert polled.mode == "changes" and (polled.upserts, polled.deletions) == (7, 5)
    assert (applied.created, applied.updated, applied.deleted) == (3, 4, 5)
    assert app_ids(env) == source_ids(env) and env.app_stats()["duplicates"] == 0


def test_without_a_position_the_first_poll_enumerates_and_deletes_what_vanished(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=40)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    with Session(engine) as session:  # as an app without a position leaves it
        state = session.get_one(SyncState, (CONNECTION, "users"))
        state.since = None
        session.add(state)
        session.commit()
    ids = sorted(app_ids(env))
    env.sim("mutate", {"delete": ids[:3]})
    polled = asyncio.run(poll_changes(TENANT, CONNECTION))
    asyncio.run(incremental_import(TENANT, CONNECTION))
    assert polled.mode == "first-pull" and polled.deletions == 3
    assert app_ids(env) == source_ids(env)


def test_the_scheduler_imports_a_new_connection_then_submits_its_polls_and_never_a_paused_ones(
    inlet_env: InletEnvFactory,
) -> None:
    env = inlet_env(records=30)
    engine = open_store(env.settings.store_url)
    assert asyncio.run(sync_scheduler()).imports == 1  # added, never imported: its full import is due
    asyncio.run(_work_until_done(["import"]))
    assert app_ids(env) == source_ids(env)
    assert asyncio.run(sync_scheduler()).polls == 0  # imported just now: the first poll is 300 s away
    _backdate(engine, seconds=301)
    assert asyncio.run(sync_scheduler()).polls == 1
    assert asyncio.run(sync_scheduler()).polls == 0  # claimed once: the stamp is stored
    pause(engine, TENANT, CONNECTION)
    _backdate(engine, seconds=301)
    assert claim_due(engine) == []
    resume(engine, TENANT, CONNECTION)
    assert [d.work for d in claim_due(engine)] == ["poll"]
    [row] = sync_status(engine)
    assert row["change_source"] == "poll" and row["imported"] != "never"


def test_a_reconciliation_repairs_and_reports_what_the_change_source_missed(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=50)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    ids = sorted(app_ids(env))
    env.sim("mutate", {"create": 2, "update": ids[:3], "delete": ids[3:7]})
    _hide_changes_until_now(engine)
    set_policy(engine, TENANT, CONNECTION, reconcile_seconds=60)
    with Session(engine) as session:
        policy = session.get_one(SyncPolicy, CONNECTION)
        policy.imported_at = utcnow() - timedelta(seconds=61)
        session.add(policy)
        session.commit()
    assert asyncio.run(sync_scheduler()).reconciliations == 1
    asyncio.run(_work_until_done(["reconcile"]))
    [row] = sync_status(engine)
    assert row["drift"] == {"missed_creates": 2, "missed_updates": 3, "missed_deletes": 4}
    assert app_ids(env) == source_ids(env) and env.app_stats()["duplicates"] == 0


def _hide_changes_until_now(engine: Any) -> None:
    """Move the poll's watermark past the changes just made, as a change source that lost them would."""
    with Session(engine) as session:
        state = session.get_one(SyncState, (CONNECTION, "users"))
        state.since = str(int((utcnow() + timedelta(seconds=5)).timestamp() * 1000))
        session.add(state)
        session.commit()


def _backdate(engine: Any, seconds: float) -> None:
    with Session(engine) as session:
        policy = session.get_one(SyncPolicy, CONNECTION)
        for name in ("imported_at", "poll_submitted_at"):
            if getattr(policy, name) is not None:
                setattr(policy, name, getattr(policy, name) - timedelta(seconds=seconds))
        session.add(policy)
        session.commit()


async def _work_until_done(works: list[str]) -> None:
    """Serve sync-connection in this process until each of `works` has a final run, in order."""
    names = [f"{work}/{TENANT}/{CONNECTION}" for work in ("import", "poll", "reconcile")]
    worker = TaskWorker(sync_connection)
    running = asyncio.create_task(worker.astart())
    try:
        while True:
            assert not running.done(), "the task worker stopped before its runs ended"
            async with get_client() as client:
                runs = await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)))
            final = sorted(r.name.split("/")[0] for r in runs if r.state is not None and r.state.is_final())
            if final == sorted(works) and len(runs) == len(works):
                assert all(r.state_name == "Completed" for r in runs), [r.state for r in runs]
                return
            await asyncio.sleep(0.2)
    finally:
        running.cancel()
