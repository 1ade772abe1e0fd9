"""Mappings end to end on a real Prefect test server, the HubSpot simulator and the demo app over loopback:
quarantine of records failing the app schema and their retry, and remap without calling the source."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from flows.full_import import ImportSummary, full_import
from flows.remap import remap, retry_quarantine
from flows.runtime import ImportJob
from inlet.cli import app
from inlet.demo import USERS_SCHEMA
from inlet.settings import get_settings
from inlet.store import create_store_engine, quarantined, raw_sample
from tests.conftest import InletEnv, InletEnvFactory
from tests.support.tables import table_rows

runner = CliRunner()


def run_import() -> ImportSummary:
    return asyncio.run(full_import(ImportJob(tenant="acme", connection="acme-hubspot")))


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def fetch_schemas_from_the_app(env: InletEnv, monkeypatch: pytest.MonkeyPatch, **properties: object) -> None:
    """The app's schema for acme: the demo schema with `properties` replaced."""
    schema = {**USERS_SCHEMA, "properties": {**USERS_SCHEMA["properties"], **properties}}
    httpx.post(env.app + "/_demo/schemas", json={"tenant": "acme", "schema": schema}).raise_for_status()
    monkeypatch.setenv("INLET_APP_SCHEMA__SOURCE", "app")
    get_settings.cache_clear()


def test_records_failing_the_app_schema_are_quarantined_then_retried(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=80)
    fetch_schemas_from_the_app(env, monkeypatch, phone={"type": "string"})  # the simulator leaves some phones empty
    summary = run_import()
    engine = create_store_engine(env.settings.store_url)
    held = quarantined(engine, ["acme-hubspot"])
    assert summary.quarantined == len(held) > 0 and summary.created == 80 - len(held)
    assert env.app_stats()["records"] == summary.created
    assert {q.error for q in held} == {"field 'phone': breaks the app schema rule type 'string' (got NoneType)"}
    assert {q.run_id for q in held} == {summary.flow_run_id} and all('"phone":null' in q.raw for q in held)
    listing = cli("quarantine", "list", "-t", "acme")
    assert len(table_rows(listing)) == len(held) and "field 'phone'" in listing
    assert f"external id: {held[0].external_id}" in cli("quarantine", "show", "-t", "acme", str(held[0].id))

    cli("mappings", "set", "-t", "acme", "phone", "{{ coalesce(phone, 'unknown') }}")
    retried = asyncio.run(retry_quarantine("acme", "acme-hubspot"))
    assert (retried.created, retried.quarantined, retried.delivered) == (len(held), 0, len(held))
    assert quarantined(engine, ["acme-hubspot"]) == [] and env.app_stats()["records"] == 80
    phones = {r["external_id"]: r["record"]["phone"] for r in env.app_records()}
    assert {phones[q.external_id] for q in held} == {"unknown"}


def test_an_import_rerun_after_the_fix_empties_the_quarantine(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=40)
    fetch_schemas_from_the_app(env, monkeypatch, phone={"type": "string"})
    first = run_import()
    again = run_import()
    engine = create_store_engine(env.settings.store_url)
    assert again.quarantined == first.quarantined == len(quarantined(engine, ["acme-hubspot"]))
    cli("mappings", "set", "-t", "acme", "phone", "{{ phone | default('', true) }}")
    fixed = run_import()
    assert fixed.created == first.quarantined and quarantined(engine, ["acme-hubspot"]) == []


def test_remap_delivers_only_changed_records_without_calling_the_source(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=60)
    run_import()
    engineers = {r["external_id"] for r in env.app_records() if r["record"]["title"] == "Engineer"}
    assert 0 < len(engineers) < 60
    cli(
        "mappings",
        "set",
        "-t",
        "acme",
        "-c",
        "acme-hubspot",
        "title",
        "{{ title | upper if title == 'Engineer' else title }}",
    )
    env.stop_simulator()  # any call to the source would now fail the run
    summary = asyncio.run(remap("acme", "acme-hubspot"))
    assert (summary.records, summary.updated, summary.unchanged) == (60, len(engineers), 60 - len(engineers))
    assert summary.delivered == len(engineers)
    titles = {r["external_id"]: r["record"]["title"] for r in env.app_records()}
    assert {titles[i] for i in engineers} == {"ENGINEER"} and "Engineer" not in titles.values()
    again = asyncio.run(remap("acme", "acme-hubspot"))
    assert (again.updated, again.delivered) == (0, 0)


def test_preview_and_show_reflect_the_layers(inlet_env: InletEnvFactory) -> None:
    env = inlet_env(records=10)
    run_import()
    cli("mappings", "set", "-t", "acme", "email", "{{ email | upper }}")
    shown = cli("mappings", "show", "-t", "acme", "-c", "acme-hubspot")
    fields = {row["field"]: row for row in table_rows(shown)}
    assert (fields["email"]["expression"], fields["email"]["layer"]) == ("{{ email | upper }}", "tenant acme (store)")
    assert fields["title"]["layer"].startswith("default (")
    preview = cli("mappings", "preview", "-t", "acme", "-c", "acme-hubspot", "--limit", "2", "--set", "title={{ 'x' }}")
    engine = create_store_engine(env.settings.store_url)
    sample = raw_sample(engine, "acme-hubspot", "users", 2)
    assert preview.count("--- ") == 2 and sample[0][0] in preview
    email = orjson.loads(sample[0][1])["properties"]["email"]
    assert '"title":"x"' in preview and f'"email":"{email.upper()}"' in preview


def test_with_keep_raw_off_nothing_is_kept_and_remap_has_nothing_to_do(
    inlet_env: InletEnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = inlet_env(records=20)
    monkeypatch.setenv("INLET_KEEP_RAW", "false")
    get_settings.cache_clear()
    assert run_import().created == 20
    engine = create_store_engine(env.settings.store_url)
    assert raw_sample(engine, "acme-hubspot", "users", 5) == []
    assert asyncio.run(remap("acme", "acme-hubspot")).records == 0
    assert "no stored records" in cli("mappings", "preview", "-t", "acme", "-c", "acme-hubspot")
