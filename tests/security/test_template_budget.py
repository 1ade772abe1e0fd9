"""A template denial-of-service corpus: every entry is refused when saved, stopped at preview, and quarantined
at import within the per-record budget, with the reason; a mapping that keeps overrunning stops rendering."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from flows.full_import import full_import
from flows.runtime import ImportJob
from inlet.cli import app
from inlet.mapping import Change, mapping_for, save
from inlet.service import initialise
from inlet.settings import Settings, get_settings
from inlet.store import (
    LedgerEntry,
    Vault,
    add_connection,
    add_tenant,
    create_store_engine,
    list_connections,
    open_store,
    quarantined,
)
from mappings import BudgetExceeded, MappingBudget, RecordError, RecordMapper, TemplateError, compile_mapping
from tests.conftest import InletEnvFactory

NESTED = "{% for i in range(N) %}{% for j in range(N) %}x{% endfor %}{% endfor %}"
GROW = "{% set ns = namespace(v=START) %}{% for i in range(64) %}{% set ns.v = STEP %}{% endfor %}{{ ns.v }}"
MACRO = "{% macro f(n) %}{% if n < 40 %}BODY{% endif %}x{% endmacro %}{{ f(0) }}"
CORPUS = [  # (what, template, the budget it runs into)
    ("nested ranges", NESTED.replace("N", "99999"), "iterations"),
    ("nested loops under the range cap", NESTED.replace("N", "9999"), "iterations"),
    (
        "for over a huge text",
        "{% for c in 'x' * 99999 %}{% for d in 'y' * 99999 %}{% endfor %}{% endfor %}",
        "iterations",
    ),
    ("a range as a list", "{{ range(10 ** 9) | list }}", "iterations"),
    ("huge string multiplication", "{{ 'x' * 10 ** 9 }}", "size"),
    ("a product of products", "{{ ('x' * 99999) * 99999 }}", "size"),
    ("shared references", "{{ ['x' * 99999] * 99999 }}", "size"),
    ("shared references, joined", "{{ (['x' * 50000] * 3) | join }}", "size"),
    ("doubling with ~", GROW.replace("START", "'x'").replace("STEP", "ns.v ~ ns.v"), "size"),
    ("doubling with +", GROW.replace("START", "'x'").replace("STEP", "ns.v + ns.v"), "size"),
    ("squaring a number", GROW.replace("START", "3").replace("STEP", "ns.v * ns.v"), "size"),
    ("a huge power", "{{ 2 ** 100000 }}", "size"),
    ("replace that multiplies", "{{ ('x' * 99999) | replace('x', 'xx') }}", "size"),
    ("str.replace that multiplies", "{{ ('x' * 9999).replace('x', 'x' * 9999) }}", "size"),
    ("str.ljust", "{{ 'x'.ljust(10 ** 9) }}", "size"),
    ("str.expandtabs", "{{ ('\\t' * 9999).expandtabs(99999) }}", "size"),
    ("a format width", "{{ '%999999999d' % 1 }}", "size"),
    ("a format width from an argument", "{{ '%*d' % (999999999, 1) }}", "size"),
    ("a str.format width", "{{ '{:>999999999}'.format(1) }}", "size"),
    ("a str.format width from an argument", "{{ '{:{}}'.format(1, 999999999) }}", "size"),
    ("indent of many lines", "{{ ('\\n' * 9999) | indent(9999) }}", "size"),
    ("batch padding", "{{ [1] | batch(10 ** 9, 'x') | list }}", "size"),
    ("a long output", "{% for i in range(9999) %}{{ 'x' * 99 }}{% endfor %}", "size"),
    ("recursion via macros", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "depth"),
    ("a recursive loop", "{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}", "depth"),
    ("exponential macros, growing output", MACRO.replace("BODY", "{{ f(n + 1) }}{{ f(n + 1) }}"), "size"),
    ("exponential macros, no output", MACRO.replace("BODY", "{% set a = f(n + 1) %}{% set b = f(n + 1) %}"), "time"),
    (
        "heavy work in every loop step",
        "{% for i in range(10000) %}{{ (range(10000) | list) | sum }}{% endfor %}",
        "time",
    ),
]
IDS = [what for what, _, _ in CORPUS]


def mapper(template: str, budget: MappingBudget | None = None, **options: object) -> RecordMapper:
    app_mapping = compile_mapping({"email": "{{ email }}", "bomb": template}, origin="tenant layer")
    return RecordMapper(
        data_source="users", udm_fields={"id": "{{ raw.id }}", "email": "{{ raw.email }}"},
        app_mapping=app_mapping, origin="test", budget=budget, **options,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(("what", "template", "reason"), CORPUS, ids=IDS)
def test_each_template_is_stopped_by_its_budget_and_is_a_record_error(what: str, template: str, reason: str) -> None:
    with pytest.raises(BudgetExceeded) as stopped:
        mapper(template).map({"id": "1", "email": "ada@example.org"})
    assert isinstance(stopped.value, RecordError) and stopped.value.reason == reason
    assert stopped.value.field == "bomb" and "INLET_MAPPING_BUDGET__" in str(stopped.value)


def test_a_budget_is_per_record_and_ordinary_templates_pass() -> None:
    loops = mapper("{% for i in range(3000) %}{% endfor %}{{ email | upper }}")
    for n in range(5):  # 3,000 steps each: five records take 15,000, but the budget is 10,000 per record
        assert loops.map({"id": str(n), "email": "a@b.c"})["bomb"] == "A@B.C"


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Settings]]:
    """An inlet home with tenant acme, its HubSpot connection, and two of its records kept raw (refused
    changes store nothing, so the tests of this module share it)."""
    settings = Settings(home=tmp_path_factory.mktemp("budget") / "home")
    initialise(settings)
    engine = open_store(settings.store_url)
    add_tenant(engine, "acme")
    credentials = {"token": SecretStr("x")}
    vault = Vault.from_settings(settings)
    add_connection(
        engine, vault, tenant_id="acme", connection_id="acme-hs", app="hubspot", parameters={}, credentials=credentials
    )
    stamp = "2024-05-01T12:00:03.512Z"
    with Session(engine) as session:
        for n in (1, 2):
            properties = {
                name: f"{name}-{n}" for name in ("email", "firstname", "lastname", "phone", "company", "jobtitle")
            }
            raw = {"id": str(n), "properties": properties, "createdAt": stamp, "updatedAt": stamp, "archived": False}
            kept_raw = orjson.dumps(raw).decode()
            session.add(
                LedgerEntry(
                    connection_id="acme-hs",
                    data_source="users",
                    external_id=str(n),
                    payload_hash="h",
                    version=1,
                    first_seen_run="r",
                    last_seen_run="r",
                    raw=kept_raw,
                )  # fmt: skip
            )
        session.commit()
    yield engine, settings
    engine.dispose()


@pytest.fixture
def store(kept: tuple[Engine, Settings], monkeypatch: pytest.MonkeyPatch) -> tuple[Engine, Settings]:
    """`kept`, as the home of the CLI too."""
    monkeypatch.setenv("INLET_HOME", str(kept[1].home))
    get_settings.cache_clear()
    return kept


@pytest.mark.parametrize(("what", "template", "reason"), CORPUS, ids=IDS)
def test_each_template_is_refused_at_save_and_nothing_is_stored(
    store: tuple[Engine, Settings], what: str, template: str, reason: str
) -> None:
    engine, settings = store
    with pytest.raises(TemplateError, match="per-record budget.*on sample data"):
        save(engine, settings, "acme", "acme-hs", "users", Change(set_fields={"title": template}))
    connection = list_connections(engine, "acme")[0]
    assert mapping_for(engine, settings, connection, "users").templates.get("title") != template


def test_the_finding_mappings_set_refuses_nested_ranges(store: tuple[Engine, Settings]) -> None:
    bomb = "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}"
    result = CliRunner().invoke(app, ["mappings", "set", "-t", "acme", "title", bomb])
    assert result.exit_code == 2 and "a range of 99999 numbers" in result.output


def test_a_template_that_only_real_records_trip_is_refused_on_the_stored_ones(store: tuple[Engine, Settings]) -> None:
    engine, settings = store  # the made-up record has no raw.id, so only the two kept records trip it
    bomb = "{% if raw.id %}{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}{% endif %}"
    with pytest.raises(TemplateError, match="loop iterations"):
        save(engine, settings, "acme", "acme-hs", "users", Change(set_fields={"title": bomb}))


def test_preview_shows_the_budget_error_instead_of_hanging(store: tuple[Engine, Settings]) -> None:
    bomb = "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}"
    result = CliRunner().invoke(app, ["mappings", "preview", "-t", "acme", "-c", "acme-hs", "--set", f"title={bomb}"])
    # the preview exits 1 when a shown record fails to map (issue 17), and says why for each
    assert result.exit_code == 1 and result.output.count("exceeded its per-record budget") == 2, result.output


def test_a_mapping_that_keeps_overrunning_time_stops_rendering() -> None:
    """No template holds the slot longer than the budget: after `overruns` records over time, the rest are
    quarantined without rendering (the clock is not even read)."""
    ticks = itertools.count()
    readings: list[int] = []

    def clock() -> float:  # every reading is 0.1 s later: a loop's 32nd step already sees 0.25 s pass
        readings.append(next(ticks))
        return readings[-1] / 10

    slow = mapper("{% for i in range(9000) %}{% endfor %}", MappingBudget(overruns=2), clock=clock)
    reasons = []
    for n in range(5):
        with pytest.raises(BudgetExceeded) as stopped:
            slow.map({"id": str(n), "email": "a@b.c"})
        reasons.append(str(stopped.value))
        if n == 1:
            spent = len(readings)
    assert all("more than 0.25s for one record" in r for r in reasons[:2])
    assert all(r.startswith("not mapped: 2 records went past") for r in reasons[2:])
    assert len(readings) == spent  # records 3 to 5 did not render at all


def test_a_record_over_budget_is_quarantined_at_import_with_the_reason_and_the_run_goes_on(
    inlet_env: InletEnvFactory,
) -> None:
    env = inlet_env(records=60)
    bomb = (  # trips only on real records whose id ends in 7: the made-up one at save has no raw.id
        "{% if raw.id.endswith('7') %}{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}"
        "{% endif %}{{ title }}"
    )
    assert CliRunner().invoke(app, ["mappings", "set", "-t", "acme", "title", bomb]).exit_code == 0
    summary = asyncio.run(full_import(ImportJob(tenant="acme", connection="acme-hubspot")))
    held = quarantined(create_store_engine(env.settings.store_url), ["acme-hubspot"])
    tripped = [q.external_id for q in held]
    assert tripped and all(external_id.endswith("7") for external_id in tripped)
    assert summary.quarantined == len(held) and summary.created == 60 - len(held)
    assert env.app_stats()["records"] == summary.created
    assert {q.error for q in held} == {
        "field 'title': the mapping exceeded its per-record budget: more than 10000 loop iterations "
        "(INLET_MAPPING_BUDGET__ITERATIONS)"
    }
