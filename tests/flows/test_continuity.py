"""Continuity on real processes (HubSpot simulator, demo app, Prefect server): the full import's watermark,
the scheduler's due work run by a task worker, pause, and reconciliation drift."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from prefect.task_worker import TaskWorker
from pydantic import SecretStr
from sqlmodel import Session

from connectors.oauth import TokenSet
from flows.full_import import full_import
from flows.incremental_import import incremental_import
from flows.poll_changes import poll_changes
from flows.runtime import ImportJob
from flows.scheduler import PollsFailed, poll_time_limit, sync_connection, sync_polls, sync_scheduler
from flows.single_flight import single_flight
from inlet.errors import NotFound
from inlet.oauth import mark_needs_reauth, register_client, save_tokens
from inlet.service import (
    Installation,
    drop_poison,
    open_installation,
    pause,
    poison_events,
    resume,
    retry_poison,
    set_policy,
    sync_status,
)
from inlet.settings import get_settings
from inlet.store import (
    HeardChange,
    SyncPolicy,
    SyncState,
    Vault,
    add_connection,
    claim_due,
    ensure_policies,
    inbox,
    open_store,
    utcnow,
)
from tests.conftest import SIM_TOKEN, InletEnv, InletEnvFactory
from tests.support.task_runs import serve_until_final

TENANT, CONNECTION = "acme", "acme-hubspot"


def _inst(env: InletEnv) -> Installation:
    return open_installation(env.settings)


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
    assert claim_due(engine, max_imports=0) == []  # no room for one more first import: it waits, unclaimed
    assert asyncio.run(sync_scheduler(run_seconds=0)).imports == 1  # added, never imported: its full import is due
    asyncio.run(_work_until_done(["import"]))
    assert app_ids(env) == source_ids(env)
    assert asyncio.run(sync_scheduler(run_seconds=0)).polls == 0  # imported just now: the first poll is 300 s away
    _backdate(engine, seconds=301)
    assert asyncio.run(sync_scheduler(run_seconds=0)).polls == 1
    assert asyncio.run(sync_scheduler(run_seconds=0)).polls == 0  # claimed once: the stamp is stored
    pause(_inst(env), TENANT, CONNECTION)
    _backdate(engine, seconds=301)
    assert claim_due(engine) == []
    resume(_inst(env), TENANT, CONNECTION)
    assert [d.work for d in claim_due(engine)] == ["poll"]
    [row] = sync_status(_inst(env))
    assert row["change_source"] == "poll" and row["imported"] != "never"


def test_the_scheduler_submits_due_polls_in_a_batch_that_a_task_worker_applies(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=30)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    ids = sorted(app_ids(env))
    env.sim("mutate", {"create": 2, "update": ids[:3], "delete": ids[3:6]})
    _backdate(engine, seconds=301)
    summary = asyncio.run(sync_scheduler(run_seconds=0))
    assert (summary.polls, summary.poll_batches) == (1, 1)
    # An earlier test's scheduler tick may have left a run of the same name, never run: this worker runs it too.
    assert set(asyncio.run(serve_until_final(sync_polls, f"polls/hubspot/{CONNECTION}"))) == {"Completed"}
    assert app_ids(env) == source_ids(env) and env.app_stats()["duplicates"] == 0


def test_a_failing_poll_of_a_batch_is_reported_and_the_others_are_applied(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=20)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    created = env.sim("mutate", {"create": 2})["created"]
    batch = [(TENANT, "acme-gone", "users"), (TENANT, CONNECTION, "users")]
    with pytest.raises(PollsFailed, match="1 of 2 polls failed: acme-gone: NotFound"):
        asyncio.run(sync_polls("hubspot", "acme-gone+1", batch))
    assert set(created) <= app_ids(env) and app_ids(env) == source_ids(env)


def test_a_poll_past_its_time_limit_is_cancelled_and_reported_and_the_rest_of_the_batch_is_applied(
    inlet_env: InletEnvFactory,
) -> None:
    """One connection's app accepts the connection and never answers (the connector would wait 30 s a request,
    and retry): its poll is cut at the batch's time limit and reported, the other poll's changes reach the app."""
    env = inlet_env(records=20)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    created = env.sim("mutate", {"create": 2})["created"]
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel completes the handshake; nothing answers
        _add_hubspot(env, "acme-stuck", f"http://127.0.0.1:{silent.getsockname()[1]}")
        batch = [(TENANT, "acme-stuck", "users"), (TENANT, CONNECTION, "users")]
        with pytest.raises(PollsFailed, match="1 of 2 polls failed: acme-stuck: PollTimedOut") as failed:
            asyncio.run(sync_polls("hubspot", "acme-stuck+1", batch, time_limit=8))
    assert (failed.value.batch.polled, failed.value.batch.changed) == (1, [CONNECTION])
    assert set(created) <= app_ids(env) and app_ids(env) == source_ids(env)
    rows = {row["connection"]: row for row in sync_status(_inst(env))}
    assert "PollTimedOut: still running after 8 s" in rows["acme-stuck"]["last_poll_error"]
    assert rows[CONNECTION]["last_poll_error"] == "-" and inbox.depth(engine, CONNECTION) == 0


def test_the_scheduler_gives_a_batch_its_connections_poll_interval_as_time_limit(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=5, start_app=False)
    engine = open_store(env.settings.store_url)
    set_policy(_inst(env), TENANT, CONNECTION, poll_seconds=120)
    with Session(engine) as session:
        policy = session.get_one(SyncPolicy, CONNECTION)
        policy.imported_at = policy.poll_submitted_at = utcnow() - timedelta(seconds=121)
        session.add(policy)
        session.commit()
    submitted: list[tuple[Any, ...]] = []
    monkeypatch.setattr(sync_polls, "delay", lambda *args: submitted.append(args))
    assert asyncio.run(sync_scheduler(run_seconds=0)).poll_batches == 1
    assert submitted == [("hubspot", CONNECTION, [(TENANT, CONNECTION, "users")], 120.0)]
    assert (poll_time_limit(10), poll_time_limit(600)) == (60.0, 600.0)  # at least a minute by default
    monkeypatch.setenv("INLET_POLL_TIME_LIMIT_SECONDS", "45")
    get_settings.cache_clear()
    assert poll_time_limit(600) == 45.0


def _add_hubspot(env: InletEnv, connection: str, base_url: str) -> None:
    engine = open_store(env.settings.store_url)
    parameters = {"base_url": base_url}
    credentials = {"token": SecretStr(SIM_TOKEN)}
    vault = Vault.from_settings(env.settings)
    add_connection(
        engine,
        vault,
        tenant_id=TENANT,
        connection_id=connection,
        app="hubspot",
        parameters=parameters,
        credentials=credentials,
    )
    ensure_policies(engine)  # as the scheduler's claim does: the connection has a sync policy


def test_a_batch_leaves_a_connection_another_run_holds_and_its_next_poll_applies_the_changes(
    inlet_env: InletEnvFactory,
) -> None:
    """A poll batch never waits for a connection's slot (an import may hold it for minutes, and the batch's
    worker slot with it): the heard changes wait in the inbox, and the next poll applies them."""
    env = inlet_env(records=20)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    created = env.sim("mutate", {"create": 2})["created"]

    async def poll_while_held() -> Any:
        async with single_flight(CONNECTION):  # as a running import holds it
            return await sync_polls("hubspot", CONNECTION, [(TENANT, CONNECTION, "users")])

    held = asyncio.run(poll_while_held())
    assert (held.polled, held.changed, held.failed) == (1, [CONNECTION], {})
    assert inbox.depth(engine, CONNECTION) == 2 and not set(created) & app_ids(env)
    asyncio.run(sync_polls("hubspot", CONNECTION, [(TENANT, CONNECTION, "users")]))
    assert inbox.depth(engine, CONNECTION) == 0 and app_ids(env) == source_ids(env)


def test_a_reconciliation_repairs_and_reports_what_the_change_source_missed(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=50)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    ids = sorted(app_ids(env))
    env.sim("mutate", {"create": 2, "update": ids[:3], "delete": ids[3:7]})
    _hide_changes_until_now(engine)
    set_policy(_inst(env), TENANT, CONNECTION, reconcile_seconds=60)
    with Session(engine) as session:
        policy = session.get_one(SyncPolicy, CONNECTION)
        policy.imported_at = utcnow() - timedelta(seconds=61)
        session.add(policy)
        session.commit()
    assert [d.work for d in claim_due(engine)] == ["reconcile"]
    asyncio.run(sync_connection(TENANT, CONNECTION, "users", "reconcile"))  # as a task worker runs it
    [row] = sync_status(_inst(env))
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
    """Serve sync-connection in this process until each of `works` has a final run."""
    worker = TaskWorker(sync_connection)
    running = asyncio.create_task(worker.astart())
    try:
        await _until_done(running, works)
    finally:
        running.cancel()


async def _until_done(running: asyncio.Task[None], works: list[str]) -> None:
    """Wait until the connection's sync-connection runs are exactly `works`, each final and Completed."""
    names = [f"{work}/{TENANT}/{CONNECTION}" for work in ("import", "poll", "reconcile")]
    while True:
        assert not running.done(), "the task worker stopped before its runs ended"
        async with get_client() as client:
            runs = await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)))
        final = sorted(r.name.split("/")[0] for r in runs if r.state is not None and r.state.is_final())
        if final == sorted(works) and len(runs) == len(works):
            assert all(r.state_name == "Completed" for r in runs), [r.state for r in runs]
            return
        await asyncio.sleep(0.2)


def test_a_poison_event_is_set_aside_and_every_other_change_is_applied(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=30)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    created = env.sim("mutate", {"create": 3})["created"]
    poison = "9" * 100_000  # a signed webhook once carried this objectId
    heard = [HeardChange(TENANT, CONNECTION, "users", i, "upsert", "webhook", source_event_id=f"e{i}") for i in created]
    inbox.add(engine, [*heard[:1], HeardChange(TENANT, CONNECTION, "users", poison, "upsert", "webhook"), *heard[1:]])
    applied = asyncio.run(incremental_import(TENANT, CONNECTION))
    assert applied.poison_events == 1 and applied.created == 3 and set(created) <= app_ids(env)
    [event] = poison_events(_inst(env), TENANT)
    assert "id pattern" in event.reason and len(event.external_id) < 200
    assert inbox.depth(engine, CONNECTION) == 0
    assert retry_poison(_inst(env), TENANT, [event.id]) == 1 and inbox.depth(engine, CONNECTION) == 1
    asyncio.run(incremental_import(TENANT, CONNECTION))  # set aside again, nothing else stalls
    with pytest.raises(NotFound, match="other-tenant"):
        drop_poison(_inst(env), "other-tenant")
    assert drop_poison(_inst(env), TENANT) == 1
    assert poison_events(_inst(env)) == [] and app_ids(env) == source_ids(env)


def test_a_revoked_grant_pauses_the_connection_until_it_is_connected_again(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=10)
    engine = open_store(env.settings.store_url)
    vault = Vault.from_settings(env.settings)
    register_client(engine, vault, "hubspot", "client-id", SecretStr("client-secret"))
    version = save_tokens(engine, vault, CONNECTION, "authorization_code", TokenSet(access_token=SecretStr("t")))
    mark_needs_reauth(engine, CONNECTION, version, "invalid_grant: the tenant revoked the app")
    asyncio.run(sync_connection(TENANT, CONNECTION, "users", "import"))  # a task run, as a task worker runs it
    [row] = sync_status(_inst(env))
    assert row["state"].startswith("needs_reauth") and claim_due(engine) == []
    save_tokens(engine, vault, CONNECTION, "authorization_code", TokenSet(access_token=SecretStr("t2")))
    assert [d.work for d in claim_due(engine)] == ["import"]


def test_a_scheduled_poll_applies_the_webhook_events_waiting_in_the_inbox(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=20)
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))
    engine = open_store(env.settings.store_url)
    created = env.sim("mutate", {"create": 2})["created"]
    _hide_changes_until_now(engine)  # the poll itself hears nothing: only the webhooks carry these creates
    heard = [HeardChange(TENANT, CONNECTION, "users", i, "upsert", "webhook", source_event_id=f"w{i}") for i in created]
    inbox.add(engine, heard)  # their `inlet.records.changed` notice was lost: no incremental-import run comes
    asyncio.run(sync_connection(TENANT, CONNECTION, "users", "poll"))  # as a task worker runs the scheduler's poll
    assert inbox.depth(engine, CONNECTION) == 0
    assert set(created) <= app_ids(env) and app_ids(env) == source_ids(env)
