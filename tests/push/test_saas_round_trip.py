"""Round trips with real processes for every SaaS simulator (Salesforce, Zendesk, Graph, Google People,
Pipedrive): the app creates -> the external record is created and linked -> the import hears it as an echo
-> a change made in the simulator is imported back -> the app updates and deletes -> the app's state equals
the simulator's. Then conflicting updates, resolved by the declared policy (last writer wins)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.full_import import ImportSummary
from inlet.store import link_for, open_store
from tests.conftest import InletEnvFactory
from tests.support.connections import import_full
from tests.support.faulty_proxy import Faults, faulty_proxy
from tests.support.simulators import SAAS_APPS, RunningSimulator, running_simulator
from tests.support.team_app import TeamApp, run_push

pytestmark = pytest.mark.real_app

ADA = {"email": "ada@x.org", "fullName": "Ada Lovelace"}


@pytest.fixture(params=sorted(SAAS_APPS))
def simulator(request: pytest.FixtureRequest, inlet_env: InletEnvFactory, tmp_path: Path) -> Iterator[RunningSimulator]:
    env = inlet_env(records=0, start_app=True)
    with running_simulator(env, request.param, tmp_path, records=3) as sim:
        yield sim


def sim_import(sim: RunningSimulator) -> ImportSummary:
    return import_full(sim.connection, data_source=sim.data_source)


def _imported(app: TeamApp, sim: RunningSimulator, records: int = 3) -> list[str]:
    """The external ids the app got from the first import, in the simulator's order."""
    assert sim_import(sim).delivered == records
    app.take_deliveries()
    return [r["id"] for r in sim.records() if not r["deleted"]]


def test_round_trip_with_no_echo(simulator: RunningSimulator) -> None:
    sim = simulator
    app = TeamApp(sim.env, sim.connection, sim.data_source)
    first, second, _ = _imported(app, sim)

    # The app creates a record: written to the simulator and linked; the import hears it as an echo.
    app.push({"app_id": "app-1", "type": "created", "record": ADA})
    created = run_push(sim.connection)
    assert (created.created, created.failed) == (1, 0), created.errors
    link = link_for(open_store(app.env.settings.store_url), sim.connection, sim.data_source, "app-1")
    assert link is not None and link.external_id is not None
    written = sim.record(link.external_id)
    assert (written["first"], written["last"], written["email"]) == ("Ada", "Lovelace", "ada@x.org")
    echoed = sim_import(sim)
    assert (echoed.created, echoed.updated, echoed.echo_suppressed) == (0, 0, 1), echoed
    assert app.take_deliveries() == 0

    # A change made in the simulator comes back, naming the app's record.
    sim.update_externally(link.external_id, last="King")
    assert sim_import(sim).updated == 1
    assert app.take_deliveries() == 1 and app.records["app-1"]["fullName"] == "Ada King"

    # The app updates and deletes records it got from the import.
    email = app.records[f"ext-{first}"]["email"]
    app.push(
        {
            "app_id": f"ext-{first}",
            "external_id": first,
            "type": "updated",
            "record": {"email": email, "fullName": "Grace Hopper"},
        },
        {"app_id": f"ext-{second}", "external_id": second, "type": "deleted"},
    )
    pushed = run_push(sim.connection)
    assert (pushed.updated, pushed.deleted, pushed.failed) == (1, 1, 0), pushed.errors
    final = sim_import(sim)
    assert (final.created, final.updated, final.deleted) == (0, 0, 0)
    assert app.take_deliveries() == 0
    assert app.state() == sim.state()
    assert sim.state()[email] == "Grace Hopper" and len(sim.state()) == 3


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _update(external_id: str, email: str, name: str, occurred_at: str) -> dict[str, Any]:
    return {
        "app_id": f"ext-{external_id}",
        "external_id": external_id,
        "type": "updated",
        "occurred_at": occurred_at,
        "record": {"email": email, "fullName": name},
    }


def test_conflicting_updates_go_to_the_later_writer(simulator: RunningSimulator) -> None:
    sim = simulator
    app = TeamApp(sim.env, sim.connection, sim.data_source)
    first, second, _ = _imported(app, sim)

    # Both sides change the name; the external change is the later one: it wins, nothing is written.
    sim.update_externally(first, last="External")
    changed = sim.record(first)
    app.push(_update(first, changed["email"], "App Name", _iso(changed["modified_ms"] - 60_000)))
    lost = run_push(sim.connection)
    assert (lost.written, lost.unchanged, lost.failed) == (0, 1, 0), lost.errors
    assert {(c["winner"], c["rule"]) for c in lost.conflicts} == {("external", "last_writer")}
    assert sim_import(sim).updated == 1 and app.take_deliveries() == 1  # the app gets the winner

    # Again, with the app's change the later one: it wins and is written; its echo is not delivered back.
    sim.update_externally(second, last="Other")
    changed = sim.record(second)
    app.push(_update(second, changed["email"], "App Two", _iso(changed["modified_ms"] + 60_000)))
    won = run_push(sim.connection)
    assert (won.updated, won.failed) == (1, 0), won.errors
    assert {c["winner"] for c in won.conflicts} == {"app"}
    echoed = sim_import(sim)
    assert (echoed.updated, echoed.echo_suppressed) == (0, 1)
    assert app.take_deliveries() == 0
    assert app.state() == sim.state() and sim.state()[changed["email"]] == "App Two"


@pytest.mark.parametrize("app", ["google_people", "msgraph", "salesforce"])
def test_a_record_changed_between_the_read_and_the_write_is_decided_again(
    app: str, inlet_env: InletEnvFactory, tmp_path: Path
) -> None:
    """The write carries the etag (Google's `etag`, Graph's If-Match, Salesforce's If-Unmodified-Since) read
    just before; a change in between makes it stale: a conflict, so the record is read and decided again."""
    env = inlet_env(records=0, start_app=True)
    with running_simulator(env, app, tmp_path, records=2, connected=False) as sim:
        faults = Faults()
        with faulty_proxy(sim.url, faults) as proxy:
            sim.connect(proxy)
            team = TeamApp(env, sim.connection, sim.data_source)
            first, _ = _imported(team, sim, 2)
            writes_before = faults.writes

            def race() -> None:
                sim.control("clock", {"advance": 2})  # a later second: Salesforce's precondition is to the second
                sim.update_externally(first, last="Racer")

            faults.race = race
            later = datetime.fromisoformat(sim.control("clock")["now"].replace("Z", "+00:00")) + timedelta(minutes=10)
            email = team.records[f"ext-{first}"]["email"]
            team.push(_update(first, email, "App Name", later.isoformat()))
            pushed = run_push(sim.connection)
            assert (pushed.updated, pushed.failed) == (1, 0), pushed.errors
            assert faults.writes - writes_before == 2  # the stale write refused, then the one decided again
            assert {(c["winner"], c["rule"]) for c in pushed.conflicts} == {("app", "last_writer")}
            echoed = sim_import(sim)
            assert (echoed.updated, echoed.echo_suppressed) == (0, 1)
            assert team.take_deliveries() == 0
            assert team.state() == sim.state() and sim.state()[email] == "App Name"
