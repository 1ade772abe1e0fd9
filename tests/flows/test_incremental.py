"""The incremental path: inbox → incremental-import, fed by webhooks (HubSpot) and polls, on real processes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from flows.events import ChangeNotifier
from flows.full_import import full_import
from flows.incremental_import import incremental_import
from flows.poll_changes import poll_changes
from flows.runtime import ImportJob
from flows.single_flight import release
from inlet.store import HeardChange, inbox, open_store, quarantined
from tests.conftest import InletEnv, InletEnvFactory

TENANT, CONNECTION = "acme", "acme-hubspot"


def import_all() -> None:
    asyncio.run(full_import(ImportJob(tenant=TENANT, connection=CONNECTION)))


def app_state(env: InletEnv) -> dict[str, dict[str, Any]]:
    return {r["external_id"]: r["record"] for r in env.app_records(connection=CONNECTION)}


def webhook(env: InletEnv, kind: str, ids: list[str], event: str) -> int:
    changes = [
        HeardChange(TENANT, CONNECTION, "users", i, kind, "webhook", source_event_id=f"{event}-{i}") for i in ids
    ]
    return inbox.add(open_store(env.settings.store_url), changes)


def test_webhook_hints_are_fetched_and_the_app_matches_the_source(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=60)
    import_all()
    mutated = env.sim("mutate", {"create": 3, "update": 4, "delete": 2})
    webhook(env, "upsert", mutated["created"] + mutated["updated"], "e1")
    webhook(env, "deleted", mutated["deleted"], "e2")
    summary = asyncio.run(incremental_import(TENANT, CONNECTION))
    # 9 fetched: the 7 upserts, and the 2 deletions, which stand only as the source confirms them (issue 16)
    assert (summary.created, summary.updated, summary.deleted, summary.fetched) == (3, 4, 2, 9)
    assert len(app_state(env)) == 61 and env.app_stats()["duplicates"] == 0
    assert inbox.depth(open_store(env.settings.store_url), CONNECTION) == 0


def test_several_events_of_one_record_become_its_newest(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=20)
    import_all()
    record = env.sim("mutate", {"update": 1})["updated"][0]
    webhook(env, "upsert", [record], "a")
    webhook(env, "deleted", [record], "b")
    webhook(env, "upsert", [record], "c")  # a late hint for a record the source no longer has? it has: fetch
    summary = asyncio.run(incremental_import(TENANT, CONNECTION))
    assert summary.inbox_events == 3 and summary.records == 1 and summary.updated == 1 and summary.deleted == 0


def test_a_hinted_record_gone_by_fetch_time_becomes_deleted(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=20)
    import_all()
    gone = env.sim("mutate", {"delete": 1})["deleted"]
    webhook(env, "upsert", gone, "late")  # the hint says updated, but the record is archived by now
    summary = asyncio.run(incremental_import(TENANT, CONNECTION))
    assert summary.gone_when_fetched == 1 and summary.deleted == 1
    assert gone[0] not in app_state(env)


def test_changes_failing_the_mapping_are_quarantined_with_their_fetched_payload(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=20)
    import_all()
    changed = env.sim("mutate", {"update": 3})["updated"]
    tenant_dir = env.settings.mapping_overrides / TENANT
    tenant_dir.mkdir(parents=True)
    (tenant_dir / "users.yaml").write_text('fields:\n  phoneLength: "{{ raw.properties.no_such_field | length }}"\n')
    webhook(env, "upsert", changed, "q")
    summary = asyncio.run(incremental_import(TENANT, CONNECTION))
    held = quarantined(open_store(env.settings.store_url), [CONNECTION])
    assert (summary.quarantined, summary.updated, summary.delivered) == (3, 0, 0)
    assert sorted(q.external_id for q in held) == sorted(changed)
    assert all(orjson.loads(q.raw)["id"] == q.external_id for q in held)
    assert inbox.depth(open_store(env.settings.store_url), CONNECTION) == 0


def test_a_webhook_retry_of_a_known_event_is_dropped(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=5)
    assert webhook(env, "upsert", ["1"], "evt") == 1 and webhook(env, "upsert", ["1"], "evt") == 0


def test_polling_hubspot_search_brings_the_app_to_the_source(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=80)
    import_all()
    first = asyncio.run(poll_changes(TENANT, CONNECTION))  # establishes the watermark
    asyncio.run(incremental_import(TENANT, CONNECTION))
    ids = _live_ids(env)
    mutated = env.sim("mutate", {"create": 2, "update": ids[:3], "delete": ids[3:7]})
    polled = asyncio.run(poll_changes(TENANT, CONNECTION))
    applied = asyncio.run(incremental_import(TENANT, CONNECTION))
    assert first.mode == "changes" and polled.upserts == 5 and polled.deletions == 4
    assert (applied.created, applied.updated, applied.deleted) == (2, 3, 4)
    assert set(app_state(env)) == set(_live_ids(env)) and env.app_stats()["duplicates"] == 0
    assert not set(mutated["deleted"]) & set(app_state(env))


def test_on_a_task_worker_setup_a_poll_applies_what_it_heard_itself(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inlet.settings import get_settings

    env = inlet_env(records=40)
    import_all()
    asyncio.run(poll_changes(TENANT, CONNECTION))  # establishes the watermark
    monkeypatch.setenv("INLET_INCREMENTAL_RUNNER", "task-worker")
    get_settings.cache_clear()
    ids = _live_ids(env)
    env.sim("mutate", {"create": 2, "update": ids[:2], "delete": ids[2:4]})
    polled = asyncio.run(poll_changes(TENANT, CONNECTION))
    assert polled.added_to_inbox == 6 and inbox.depth(open_store(env.settings.store_url), CONNECTION) == 0
    assert set(app_state(env)) == set(_live_ids(env)) and env.app_stats()["duplicates"] == 0


def _live_ids(env: InletEnv) -> list[str]:
    import httpx

    from tests.conftest import SIM_TOKEN

    ids: list[str] = []
    url: str | None = f"{env.simulator}/crm/v3/objects/contacts?limit=100"
    while url:
        page = httpx.get(url, headers={"Authorization": f"Bearer {SIM_TOKEN}"}, timeout=10).json()
        ids += [r["id"] for r in page["results"]]
        url = page.get("paging", {}).get("next", {}).get("link")
    return ids


def test_a_burst_of_notifications_starts_a_handful_of_runs() -> None:
    emitted: list[tuple[str, str]] = []
    notifier = ChangeNotifier(window=60, emit=lambda t, c: emitted.append((t, c)))
    for _ in range(1000):
        notifier.notify(TENANT, CONNECTION)
    notifier.close()  # the trailing emit fires when the receiver stops, or when the window ends
    assert emitted == [(TENANT, CONNECTION), (TENANT, CONNECTION)]


def test_a_killed_incremental_run_loses_nothing(inlet_env: InletEnvFactory) -> None:
    import subprocess
    import sys
    import time

    env = inlet_env(records=200)
    import_all()
    updated = env.sim("mutate", {"update": 150})["updated"]
    webhook(env, "upsert", updated, "k")
    env.sim("faults", {"slow_seconds": 0.05})
    command = [sys.executable, "-m", "inlet.cli", "import", "incremental", "-t", TENANT, "-c", CONNECTION]
    proc = subprocess.Popen(command, env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while env.sim("stats")["get_requests"] < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        proc.kill()  # mid-fetch: the batch was never committed
        proc.wait(10)
    store = open_store(env.settings.store_url)
    assert inbox.depth(store, CONNECTION) == 150
    asyncio.run(release(CONNECTION))  # the killed run's slot; the server's lease expiry does this in production
    env.sim("reset", {})
    summary = asyncio.run(incremental_import(TENANT, CONNECTION))
    assert summary.updated == 150 and inbox.depth(store, CONNECTION) == 0 and env.app_stats()["duplicates"] == 0


def test_a_receiver_restart_loses_nothing_it_acknowledged(inlet_env: InletEnvFactory) -> None:
    import base64
    import hashlib
    import hmac
    import sys
    import time

    import httpx
    import orjson
    from pydantic import SecretStr

    from inlet.local import free_port, start_process, stop_process
    from inlet.store import Vault, add_connection
    from tests.conftest import SIM_TOKEN

    env = inlet_env(records=10)
    store = open_store(env.settings.store_url)
    add_connection(
        store,
        Vault.from_settings(env.settings),
        tenant_id=TENANT,
        connection_id=CONNECTION,
        app="hubspot",
        parameters={"base_url": env.simulator},
        replace=True,
        credentials={"token": SecretStr(SIM_TOKEN), "webhook_secret": SecretStr("hs-secret")},
    )
    import_all()
    created = env.sim("mutate", {"create": 1})["created"][0]
    port = free_port()
    command = [sys.executable, "-m", "inlet.cli", "serve", "--port", str(port)]
    receiver = start_process(command, f"http://127.0.0.1:{port}/health", env=env.env)
    url = f"http://127.0.0.1:{port}/webhooks/hubspot/{TENANT}/{CONNECTION}"
    body = orjson.dumps([{"eventId": 7, "subscriptionType": "contact.creation", "objectId": int(created)}])
    stamp = str(int(time.time() * 1000))
    signature = hmac.new(b"hs-secret", b"POST" + url.encode() + body + stamp.encode(), hashlib.sha256).digest()
    headers = {"X-HubSpot-Signature-v3": base64.b64encode(signature).decode(), "X-HubSpot-Request-Timestamp": stamp}
    try:
        assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 200
    finally:
        stop_process(receiver)  # the receiver goes away right after its 2xx
    receiver = start_process(command, f"http://127.0.0.1:{port}/health", env=env.env)
    stop_process(receiver)
    assert inbox.depth(store, CONNECTION) == 1
    asyncio.run(incremental_import(TENANT, CONNECTION))
    assert created in app_state(env)


def test_a_task_worker_applies_heard_changes_at_once(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INLET_INCREMENTAL_RUNNER=task-worker: the notification submits `apply-inbox` with `.delay()`, and a Prefect
    task worker (here in this process) runs it; the event it also emits is labelled so no flow run starts."""

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.objects import TaskRun
    from prefect.task_worker import TaskWorker

    from flows.events import emit_changed
    from flows.incremental_import import apply_inbox
    from inlet.settings import get_settings

    env = inlet_env(records=30)
    import_all()
    created = env.sim("mutate", {"create": 2})["created"]
    webhook(env, "upsert", created, "tw")
    monkeypatch.setenv("INLET_INCREMENTAL_RUNNER", "task-worker")
    get_settings.cache_clear()
    assert get_settings().notify_window < 1.0
    name = TaskRunFilter(name=TaskRunFilterName(any_=[f"apply-inbox/{TENANT}/{CONNECTION}"]))

    async def apply_inbox_runs() -> list[TaskRun]:
        async with get_client() as client:
            return await client.read_task_runs(task_run_filter=name)

    earlier = {run.id for run in asyncio.run(apply_inbox_runs())}  # e.g. a poll run's, in an earlier test
    emit_changed(TENANT, CONNECTION)

    async def work_until_done() -> list[str]:
        worker = TaskWorker(apply_inbox)
        running = asyncio.create_task(worker.astart(timeout=60))
        try:
            while True:
                assert not running.done(), "the task worker stopped before its run ended"
                runs = [run for run in await apply_inbox_runs() if run.id not in earlier]
                if runs and all(run.state is not None and run.state.is_final() for run in runs):
                    return [run.state_name or "" for run in runs]
                await asyncio.sleep(0.1)
        finally:
            running.cancel()

    assert asyncio.run(work_until_done()) == ["Completed"]
    assert set(created) <= set(app_state(env))
    assert inbox.depth(open_store(env.settings.store_url), CONNECTION) == 0 and env.app_stats()["duplicates"] == 0


def test_the_incremental_trigger_of_prefect_yaml_and_serve_matches_the_events_of_the_deployment_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.events import DeploymentEventTrigger
    from prefect.events.schemas.events import Resource, ResourceSpecification

    from flows import events
    from flows.serve import deployments
    from inlet.settings import get_settings

    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "emit_event", lambda **event: emitted.append(event))
    for runner in ("deployment", "task-worker"):
        monkeypatch.setenv("INLET_INCREMENTAL_RUNNER", runner)
        get_settings.cache_clear()
        events.emit_changed(TENANT, CONNECTION, submit=False)
    (served,) = [d for d in deployments() if d.name == "incremental-import"]
    (trigger,) = served.triggers
    assert isinstance(trigger, DeploymentEventTrigger) and trigger.expect == {e["event"] for e in emitted}
    assert isinstance(trigger.match, ResourceSpecification)
    assert [trigger.match.matches(Resource(e["resource"])) for e in emitted] == [True, False]  # a task worker's: no run
    assert trigger.parameters is not None and set(trigger.parameters) == {"tenant", "connection", "triggered_by"}
    assert emitted[0]["payload"] == {"tenant": TENANT, "connection": CONNECTION, "source": "webhook"}


def test_runs_in_one_process_take_turns_and_a_third_leaves_the_work_to_the_waiting_one() -> None:
    from flows.single_flight import take_turn

    async def scenario() -> list[str]:
        log: list[str] = []
        first_holds, release_first = asyncio.Event(), asyncio.Event()

        async def run(name: str, hold: asyncio.Event | None = None) -> None:
            async with take_turn(CONNECTION) as ours:
                log.append(f"{name}:{'drains' if ours else 'leaves it'}")
                if hold is not None:
                    first_holds.set()
                    await hold.wait()

        first = asyncio.create_task(run("a", release_first))
        await first_holds.wait()
        second = asyncio.create_task(run("b"))
        await asyncio.sleep(0)  # b now waits for the turn
        await run("c")  # b will read the inbox after a: c's changes are b's
        release_first.set()
        await asyncio.gather(first, second)
        await run("d")  # nobody waits any more: d drains
        return log

    assert asyncio.run(scenario()) == ["a:drains", "c:leaves it", "b:drains", "d:drains"]


def test_status_shows_the_inbox_lag_and_finds_the_last_incremental_run_by_its_tags(inlet_env: InletEnvFactory) -> None:
    from datetime import UTC, datetime
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from inlet.service import connection_status, run_history

    env = inlet_env(records=10)
    import_all()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    webhook(env, "upsert", env.sim("mutate", {"create": 1})["created"], "status")
    store = open_store(env.settings.store_url)
    (waiting,) = connection_status(store)
    assert waiting["inbox"] == 1 and waiting["lag_seconds"] >= 0 and waiting["last_full_import"] >= started[:10]
    summary = asyncio.run(incremental_import(TENANT, CONNECTION))
    (row,) = connection_status(store, run_history([CONNECTION]))
    assert row["inbox"] == 0 and row["lag_seconds"] == 0 and row["outbox_pending"] == 0
    finished, state = row["last_incremental"].split()
    assert finished >= started and state == "completed"

    async def tags_of_the_run() -> set[str]:
        async with get_client() as client:
            return set((await client.read_flow_run(UUID(summary.flow_run_id))).tags)

    expected = {f"tenant:{TENANT}", f"connection:{CONNECTION}", "app:hubspot", "data-source:users"}
    assert expected <= asyncio.run(tags_of_the_run())
