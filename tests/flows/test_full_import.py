"""The full-import flow on a real Prefect test server, a HubSpot simulator and the demo app over loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from connectors.errors import AuthError, MalformedPage, RetryableError
from flows import tasks
from flows.deliver_outbox import deliver_outbox
from flows.full_import import ImportSummary, full_import
from flows.runtime import ImportJob, open_runtime
from flows.single_flight import release
from inlet.errors import ConfigError, DeliveryError
from inlet.settings import Settings
from inlet.store import Checkpoint, Connection, OutboxEvent, create_store_engine, outbox
from inlet.store import write_page as store_write_page
from mappings.errors import TemplateError
from tests.conftest import SIM_TOKEN, DatabaseFactory, InletEnv, InletEnvFactory, start_app_process
from tests.support.hubspot_source import hubspot_emails

JOB = ImportJob(tenant="acme", connection="acme-hubspot")


def run_import(job: ImportJob = JOB) -> ImportSummary:
    return asyncio.run(full_import(job))


def test_full_import_delivers_every_record_and_a_rerun_sends_nothing(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=250)
    first = run_import()
    second = run_import()
    assert (first.pages, first.created, first.delivered) == (3, 250, 250)
    assert (second.created, second.updated, second.unchanged, second.delivered) == (0, 0, 250, 0)
    stats = env.app_stats()
    assert {k: stats[k] for k in ("records", "deleted", "events_applied", "duplicates", "rejected_signatures")} | {
        "batches": 0
    } == {
        "records": 250,
        "deleted": 0,
        "events_applied": 250,
        "duplicates": 0,
        "batches": 0,
        "rejected_signatures": 0,
    }


async def test_runs_in_one_process_share_one_store_engine(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=1)
    first, second = open_runtime(JOB, env.settings), open_runtime(JOB, env.settings)
    try:
        assert first.engine is second.engine
    finally:
        await first.aclose()
        await second.aclose()


def test_events_go_from_memory_and_the_app_ends_with_the_source_records_once(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=250)
    read_back: list[int] = []
    claim_batch = outbox.claim_batch

    def counted(*args: Any, **kwargs: Any) -> Any:
        batch = claim_batch(*args, **kwargs)
        read_back.append(len(batch or []))
        return batch

    monkeypatch.setattr(outbox, "claim_batch", counted)
    summary = run_import()
    assert summary.delivered == 250 and sum(read_back) == 0  # every event went from memory, none was read back
    stats = env.app_stats()
    assert (stats["records"], stats["duplicates"], stats["events_applied"]) == (250, 0, 250)
    assert outbox.counts(create_store_engine(env.settings.store_url)).pending == 0


def test_small_pages_commit_several_to_a_transaction_and_the_app_ends_with_the_source(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=2500)  # 25 HubSpot pages of 100
    written: list[int] = []
    write_page = store_write_page

    def counted(*args: Any, **kwargs: Any) -> Any:
        written.append(kwargs["pages"])
        return write_page(*args, **kwargs)

    monkeypatch.setattr(tasks, "write_page", counted)
    summary = run_import()
    assert (
        written == [10, 10, 5]
        and summary.pages == 25
        and _checkpoint(create_store_engine(env.settings.store_url)).pages == 25
    )
    app = {r["external_id"]: r["record"]["email"] for r in env.app_records(connection="acme-hubspot")}
    assert app == _source_emails(env) and env.app_stats()["duplicates"] == 0


def _source_emails(env: InletEnv) -> dict[str, str]:
    return hubspot_emails(env.simulator, SIM_TOKEN)


def test_app_receives_mapped_records(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=5)
    run_import()
    record = env.app_records()[0]["record"]
    assert set(record) == {
        "email",
        "fullName",
        "firstName",
        "lastName",
        "phone",
        "company",
        "title",
        "active",
        "sourceUpdatedAt",
    }
    assert record["fullName"] == f"{record['firstName']} {record['lastName']}" and record["active"] is True


def test_changed_records_are_sent_as_updates(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=120)
    run_import()
    changed = env.sim("mutate", {"update": 7, "create": 3})
    summary = run_import()
    assert (summary.created, summary.updated, summary.delivered) == (3, 7, 10)
    assert len(changed["updated"]) == 7 and env.app_stats()["records"] == 123


def test_vanished_records_become_deleted_events(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=100)
    run_import()
    gone = env.sim("mutate", {"delete": 4})["deleted"]
    summary = run_import()
    deleted = {r["external_id"] for r in env.app_records(include_deleted="1") if r["deleted"]}
    assert summary.deleted == 4 and deleted == set(gone)


def test_mass_delete_guard_refuses_and_says_so(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=50)
    run_import()
    env.sim("mutate", {"delete": 40})
    summary = run_import()
    assert summary.deleted == 0 and "refused to delete 40 of 50" in summary.delete_guard
    assert run_import(JOB.model_copy(update={"force_delete": True})).deleted == 40


def test_run_has_readable_name_and_publishes_artifacts(inlet_env: InletEnvFactory) -> None:
    inlet_env(records=30)
    summary = run_import()

    async def read() -> tuple[str, dict[str, object], dict[str, dict[str, list[Any]]]]:
        async with get_client() as client:
            run = await client.read_flow_run(summary.flow_run_id)  # type: ignore[arg-type]
            flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            artifacts = await client.read_artifacts(artifact_filter=flt)
            tasks = await client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id]))
            )
            inputs = {t.name: {k: list(v) for k, v in t.task_inputs.items()} for t in tasks}
            return run.name, {a.key or "": a.data for a in artifacts}, inputs

    name, artifacts, task_inputs = asyncio.run(read())
    assert name == "full-import/acme/acme-hubspot/users"
    # the run's resources go to its tasks by reference: the UI lists the argument, with no value to show
    assert task_inputs["list-records/page-1"] == {"run": [], "pages": [], "scope": [], "page_no": []}
    assert artifacts["full-import-acme-acme-hubspot-users-progress"] == 100
    assert "records_seen" in str(artifacts["full-import-acme-acme-hubspot-users-summary"])
    assert "breaker" in str(artifacts["delivery-status"])


def test_source_gone_mid_run_fails_clearly_keeps_the_checkpoint_and_resumes(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=2000)
    env.sim("faults", {"slow_seconds": 0.05})
    engine = create_store_engine(env.settings.store_url)

    def stop_after_three_pages() -> None:
        _wait_for_pages(engine, 3)
        env.stop_simulator()

    stopper = threading.Thread(target=stop_after_three_pages)
    stopper.start()
    with pytest.raises(RetryableError, match=r"hubspot: cannot reach http://127\.0\.0\.1:\d+/crm/v3/objects/contacts"):
        run_import()
    stopper.join()
    kept = _checkpoint(engine)
    assert kept.pages >= 3 and not kept.complete and env.app_stats()["records"] == kept.records
    env.start_simulator()
    summary = run_import()
    assert summary.resumed_at_page == kept.pages and env.app_stats()["records"] == 2000


def test_closed_port_is_a_retryable_error_naming_the_url(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=10)
    _point_connection_at(env.settings, "http://127.0.0.1:9")
    with pytest.raises(RetryableError, match=r"cannot reach http://127\.0\.0\.1:9/crm/v3/objects/contacts"):
        run_import()


def test_source_401_is_an_auth_error_without_a_retry_storm(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=10)
    _point_connection_at(env.settings, env.simulator, token="pat-na1-wrong")
    with pytest.raises(AuthError, match="answered 401") as raised:
        run_import()
    assert env.sim("stats")["list_requests"] == 1 and "pat-na1-wrong" not in str(raised.value)


def test_a_data_source_the_connection_does_not_hold_is_refused_before_any_request(inlet_env: InletEnvFactory) -> None:
    """Another model's mapping and ledger on this connection's records would be wrong data under "Completed"."""
    env = inlet_env(records=10)
    with pytest.raises(ConfigError, match="holds 'users', not 'contacts': run it with data source 'users'"):
        run_import(JOB.model_copy(update={"data_source": "contacts"}))
    assert env.sim("stats")["list_requests"] == 0 and env.app_stats()["records"] == 0


def test_a_job_naming_no_data_source_runs_the_one_the_connection_holds(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=10, start_app=False)
    engine = create_store_engine(env.settings.store_url)
    with Session(engine) as session:  # as a connection made for the other data model holds it
        session.execute(update(Connection).where(col(Connection.id) == "acme-hubspot").values(data_source="contacts"))
        session.commit()
    run = open_runtime(JOB, env.settings, engine=engine)
    asyncio.run(run.aclose())
    assert JOB.data_source is None and (run.job.data_source, run.data_source) == ("contacts", "contacts")


def test_malformed_page_names_the_connector_and_the_page(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=250)
    env.sim("faults", {"malformed": 1})
    with pytest.raises(
        MalformedPage, match=r"hubspot: the page http://127\.0\.0\.1:\d+/crm/v3/objects/contacts\?.* is not JSON"
    ):
        run_import()


def test_app_down_keeps_the_outbox_and_delivers_when_it_returns(inlet_env: InletEnvFactory, tmp_path: Path) -> None:
    env = inlet_env(records=120, start_app=False)
    with pytest.raises(DeliveryError, match="wait in the outbox"):
        run_import()
    engine = create_store_engine(env.settings.store_url)
    assert outbox.counts(engine).pending == 120
    with Session(engine) as session:  # the run's sender left: none of its events stays claimed
        assert all(e.claimed_by is None for e in session.exec(select(OutboxEvent)))
    secret = env.settings.destination_secret()
    assert secret is not None
    app = start_app_process(int(env.app.rsplit(":", 1)[1]), tmp_path, secret.get_secret_value())
    try:
        _clear_retry_delay(engine)
        result = asyncio.run(deliver_outbox("acme", "acme-hubspot"))
        assert result.delivered == 120 and outbox.counts(engine).pending == 0 and env.app_stats()["records"] == 120
    finally:
        app.terminate()
        app.wait(10)


def test_records_failing_the_mapping_are_quarantined_and_the_run_goes_on(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=60)
    tenant_dir = env.settings.mapping_overrides / "acme"
    tenant_dir.mkdir(parents=True)
    (tenant_dir / "users.yaml").write_text('fields:\n  phoneLength: "{{ raw.properties.phone | length }}"\n')
    summary = run_import()
    assert summary.quarantined > 0 and summary.created == 60 - summary.quarantined
    assert env.app_stats()["records"] == summary.created


def test_bad_tenant_mapping_fails_at_load_naming_file_and_field(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=5)
    tenant_dir = env.settings.mapping_overrides / "acme"
    tenant_dir.mkdir(parents=True)
    (tenant_dir / "users.yaml").write_text('fields:\n  fullName: "{{ full_name | upper }"\n')
    with pytest.raises(TemplateError, match=r"acme/users\.yaml: field 'fullName': .*line 1"):
        run_import()
    assert env.sim("stats")["list_requests"] == 0


def test_killed_run_resumes_from_its_checkpoint_and_loses_nothing(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=2000)
    env.sim("faults", {"slow_seconds": 0.1})
    command = [sys.executable, "-m", "inlet.cli", "import", "full", "-t", "acme", "-c", "acme-hubspot"]
    proc = subprocess.Popen(command, env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = create_store_engine(env.settings.store_url)
    try:
        _wait_for_pages(engine, 5, proc)
    finally:
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait(10)
    asyncio.run(release("acme-hubspot"))  # the killed run's slot; the server's lease expiry does this in production
    env.sim("reset", {})
    summary = run_import()
    assert summary.resumed_at_page >= 5 and summary.pages == 20 - summary.resumed_at_page
    assert env.app_stats()["records"] == 2000 and outbox.counts(engine).pending == 0


def _checkpoint(engine: Engine) -> Checkpoint:
    with Session(engine) as session:
        checkpoint = session.get(Checkpoint, ("acme-hubspot", "users"))
        assert checkpoint is not None
        return checkpoint


def _wait_for_pages(engine: Engine, pages: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        with Session(engine) as session:
            checkpoint = session.get(Checkpoint, ("acme-hubspot", "users"))
            if checkpoint is not None and checkpoint.pages >= pages and checkpoint.next_request:
                return
        time.sleep(0.02)
    raise AssertionError(f"the import did not reach page {pages}")


def _point_connection_at(settings: Settings, base_url: str, token: str | None = None) -> None:
    from pydantic import SecretStr

    from inlet.store import Vault, add_connection, open_store
    from tests.conftest import SIM_TOKEN

    add_connection(
        open_store(settings.store_url),
        Vault.from_settings(settings),
        tenant_id="acme",
        connection_id="acme-hubspot",
        app="hubspot",
        parameters={"base_url": base_url},
        credentials={"token": SecretStr(token or SIM_TOKEN)},
        replace=True,
    )


def _clear_retry_delay(engine: Engine) -> None:
    """The run deferred the failed batch by a minute; the operator's `deliver` should not wait for it here."""
    with engine.begin() as db:
        db.execute(update(OutboxEvent).values(next_attempt_at=None))


@pytest.mark.postgres
def test_full_import_on_a_postgresql_store(inlet_env: InletEnvFactory, pg_databases: DatabaseFactory) -> None:
    env = inlet_env(records=450, database_url=pg_databases())
    first = run_import()
    env.sim("mutate", {"update": 5, "delete": 2})
    second = run_import()
    assert env.settings.store_url.startswith("postgresql+psycopg://")
    assert (first.created, second.updated, second.deleted, second.unchanged) == (450, 5, 2, 443)
    assert env.app_stats()["records"] == 448
