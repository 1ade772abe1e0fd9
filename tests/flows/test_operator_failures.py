"""Failures the operator cannot miss (issue 17): real Prefect runs, a HubSpot simulator and the demo app as
separate processes over loopback."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.sorting import FlowRunSort
from typer.testing import CliRunner

from flows.full_import import full_import
from flows.runtime import ImportJob
from inlet.cli import app
from inlet.delivery import generate_secret
from inlet.errors import DeliveryError
from inlet.settings import get_settings
from inlet.store import create_store_engine, outbox
from tests.conftest import SIM_TOKEN, InletEnv, InletEnvFactory, start_app_process
from tests.support.hubspot_source import hubspot_emails
from tests.support.tables import table_rows

JOB = ImportJob(tenant="acme", connection="acme-hubspot")
RUN_NAME = "full-import/acme/acme-hubspot/users"


def source_emails(env: InletEnv) -> dict[str, str]:
    return hubspot_emails(env.simulator, SIM_TOKEN)


def app_emails(env: InletEnv) -> dict[str, str]:
    return {r["external_id"]: r["record"]["email"] for r in env.app_records(connection=JOB.connection)}


def last_run(name: str = RUN_NAME) -> Any:
    async def read() -> Any:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=1,
            )
            return runs[0]

    return asyncio.run(read())


def inlet_cli(*args: str) -> tuple[int, str]:
    """The `inlet` command in this process (a subprocess costs ~20 s of imports on a loaded machine)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_a_wrong_destination_secret_fails_the_run_keeps_the_events_and_delivers_after_the_fix(
    inlet_env: InletEnvFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=40, start_app=False)
    app_secret = generate_secret()  # the app was given another secret than inlet signs with
    port = int(env.app.rsplit(":", 1)[1])
    env.processes["app"] = start_app_process(port, tmp_path, app_secret)

    with pytest.raises(DeliveryError) as raised:
        asyncio.run(full_import(JOB))
    message = str(raised.value)
    assert "refused" in message and "401" in message and "destination.secret" in message
    assert app_secret not in message
    run = last_run()
    assert run.state_type.value == "FAILED" and "destination.secret" in (run.state.message or "")
    engine = create_store_engine(env.settings.store_url)
    counts = outbox.counts(engine)
    assert (counts.pending, counts.dead) == (40, 0)
    stats = env.app_stats()
    # the breaker opened on the first refusal: one refused batch, not one per batch or per try
    assert stats["rejected_signatures"] == 1 and stats["records"] == 0

    monkeypatch.setenv("PREFECT_API_URL", env.env["PREFECT_API_URL"])
    code, shown = inlet_cli("status")
    assert code == 0, shown
    destinations = table_rows(shown[shown.index("deliveries") :])
    assert [row["breaker"] for row in destinations] == ["refused"] and "answered 401" in shown, shown
    connection = shown[: shown.index("deliveries")]
    [last_error] = re.findall(r"^last error\s+(.*)$", connection, re.M)
    assert last_error.strip() not in ("", "-"), shown  # the failed run is the connection's last error
    assert app_secret not in shown

    # the operator gives inlet the app's secret; the next run tries it at once and everything goes out
    monkeypatch.setenv("INLET_DESTINATION__SECRET", app_secret)
    get_settings.cache_clear()
    summary = asyncio.run(full_import(JOB))
    assert summary.delivered == 40 and summary.dead_letters == 0
    assert app_emails(env) == source_emails(env) and len(app_emails(env)) == 40
    assert outbox.counts(engine).pending == 0


def test_a_mapping_typo_is_warned_of_fails_preview_and_fails_the_run_naming_the_reason(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=20)
    monkeypatch.setenv("PREFECT_API_URL", env.env["PREFECT_API_URL"])
    asyncio.run(full_import(JOB))  # the connection's raw records are stored: what `mappings set` checks against
    where = ("--tenant", "acme", "--connection", "acme-hubspot")

    code, out = inlet_cli("mappings", "set", *where, "lastName", "{{ raw.properties.lastname | trim }}")
    assert code == 0 and "warning" not in out
    code, out = inlet_cli("mappings", "set", *where, "lastName", "{{ raw.properties.last_nme | trim }}")
    assert code == 0 and "saved" in out  # a warning, not a refusal: the source may not have sent the field yet
    assert "raw.properties.last_nme is in none of the 20 stored records of connection acme-hubspot" in out

    code, out = inlet_cli("mappings", "preview", *where)
    assert code == 1 and "5 of 5 records fail to map" in out

    code, out = inlet_cli("import", "full", *where)
    assert code != 0 and "20 of 20 records (100%) were quarantined" in out
    assert "INLET_MAX_QUARANTINE_SHARE=0.5" in out and "20 x " in out and "last_nme" in out
    assert last_run().state_type.value == "FAILED"
    # nothing reached the app from the broken run: it still holds the source's records as the first run sent them
    assert app_emails(env) == source_emails(env)


def test_the_quarantine_share_setting_lets_a_few_bad_records_pass(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=20)
    monkeypatch.setenv("INLET_MAX_QUARANTINE_SHARE", "1")
    get_settings.cache_clear()
    tenant_dir = env.settings.mapping_overrides / "acme"
    tenant_dir.mkdir(parents=True)
    (tenant_dir / "users.yaml").write_text('fields:\n  lastName: "{{ raw.properties.last_nme | trim }}"\n')
    summary = asyncio.run(full_import(JOB))  # 100% quarantined, but the operator turned the check off
    assert summary.quarantined == 20 and summary.delivered == 0
