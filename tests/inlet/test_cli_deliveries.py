"""`inlet deliveries ...` on a real store: figures, dead letters, replay, purge, destinations."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from inlet.cli import app
from inlet.cli.deliveries import parse_age
from inlet.settings import get_settings
from inlet.store import MappedRecord, PageScope, add_tenant, open_store, outbox, write_page
from tests.support.tables import table_rows

runner = CliRunner()
SCOPE = PageScope("acme", "acme-hubspot", "users", generation="gen-1", run_id="run-1")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    assert runner.invoke(app, ["init"]).exit_code == 0
    engine = open_store(get_settings().store_url)
    add_tenant(engine, "acme")
    records = [MappedRecord(i, {"email": f"{i}@example.org"}, None) for i in ("1", "2", "3")]
    write_page(engine, SCOPE, records, next_request=None)
    outbox.park_records(engine, outbox.pending_batch(engine, "acme-hubspot", 2), "422: no email here")
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_status_shows_pending_dead_and_the_breaker_per_destination() -> None:
    code, out = invoke("deliveries", "status")
    (row,) = table_rows(out)
    assert code == 0 and row["destination"] == "http://127.0.0.1:8400/inlet/events"
    assert (row["pending"], row["dead"], row["breaker"]) == ("1", "2", "closed")
    assert table_rows(invoke("status")[1])[0]["dead"] == "2"  # `inlet status` ends with the same table


def test_list_dead_shows_the_apps_answer_and_list_shows_what_waits() -> None:
    code, out = invoke("deliveries", "list", "--dead")
    dead = table_rows(out)
    assert code == 0 and [row["record"] for row in dead] == ["1", "2"]
    assert dead[0]["app's last answer"] == "422: no email here" and "UTC (" in dead[0]["died"]
    assert out.rstrip().endswith("2 shown, no more.")
    assert [row["record"] for row in table_rows(invoke("deliveries", "list")[1])] == ["3"]


def test_a_long_list_says_how_to_get_the_next_page_and_the_cursor_gets_it() -> None:
    code, out = invoke("deliveries", "list", "--dead", "--limit", "1")
    (first,) = table_rows(out)
    footer = out.rstrip().splitlines()[-1]
    assert code == 0 and first["record"] == "1" and footer.startswith("1 shown; more: inlet deliveries list --dead")
    command = footer.split("more: ", 1)[1].split()[3:]  # what follows `inlet deliveries list`
    code, out = invoke("deliveries", "list", *command)
    assert code == 0 and [row["record"] for row in table_rows(out)] == ["2"]
    assert out.rstrip().endswith("1 shown, no more.")


def test_replay_needs_a_selector_and_makes_dead_letters_pending() -> None:
    assert invoke("deliveries", "replay")[0] == 2
    first = outbox.entries(open_store(get_settings().store_url), "dead")[0].id
    assert invoke("deliveries", "replay", "--id", str(first))[1].startswith("1 dead letters are pending again")
    assert invoke("deliveries", "replay", "--all")[1].startswith("1 dead letters")
    assert table_rows(invoke("deliveries", "status")[1])[0]["dead"] == "0"


def test_purge_deletes_only_older_dead_letters() -> None:
    assert invoke("deliveries", "purge", "--older-than", "7d")[1].startswith("0 dead letters")
    assert invoke("deliveries", "purge", "--older-than", "0s")[1].startswith("2 dead letters")
    assert invoke("deliveries", "purge", "--older-than", "soon")[0] == 2


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), ("1.5d", 129600)])
def test_parse_age(text: str, seconds: int) -> None:
    assert parse_age(text).total_seconds() == seconds


def test_destination_set_then_rotate_and_retire_for_a_tenant() -> None:
    code, out = invoke("deliveries", "destination", "set", "-t", "acme", "--url", "https://acme.example")
    assert code == 0 and "whsec_" in out
    code, out = invoke("deliveries", "destination", "rotate-secret", "-t", "acme")
    assert code == 0 and "whsec_" in out
    assert invoke("deliveries", "destination", "retire-secret", "-t", "acme")[1].strip() == "the old secret is retired"
    destinations = [row["destination"] for row in table_rows(invoke("deliveries", "status")[1])]
    assert "https://acme.example/inlet/events" in destinations


def test_destination_for_an_unknown_tenant_exits_2() -> None:
    code, out = invoke("deliveries", "destination", "rotate-secret", "-t", "globex")
    assert code == 2 and "no destination of its own" in out
