"""The simulator toolkit, for every simulated connector: the `/_sim/*` control surface (records created,
updated, deleted, purged, restored; the clock advanced) and every constructor knob on the command line."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from connectors.registry import make_simulator, simulated
from connectors.simulation import Knob, SimulatorBase, knobs, with_knobs
from inlet.cli import app

APPS = simulated()
runner = CliRunner()


def control(sim: SimulatorBase) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="http://sim.test")


@pytest.mark.parametrize("name", APPS)
async def test_records_are_created_with_fields_updated_deleted_restored_and_purged_over_http(name: str) -> None:
    sim = make_simulator(name, 3)
    async with control(sim) as c:
        created = (await c.post("/_sim/mutate", json={"create": [{"email": "ada@example.org", "first": "Ada"}]})).json()
        [new] = created["created"]
        updated = await c.post("/_sim/mutate", json={"update": {new: {"title": "CEO"}}})
        soft = (await c.post("/_sim/mutate", json={"soft_delete": [new]})).json()["soft_deleted"]
        restored = (await c.post("/_sim/mutate", json={"restore": [new]})).json()["restored"]
        purged = (await c.post("/_sim/mutate", json={"purge": [new]})).json()["purged"]
        state = (await c.get(f"/_sim/records/{new}")).json()
    assert updated.json()["updated"] == [new] and soft == restored == purged == [new]
    assert (state["email"], state["first"], state["title"], state["purged"]) == ("ada@example.org", "Ada", "CEO", True)
    assert [h["new"] for h in state["history"]] == ["CEO"] and new not in sim.ids()


@pytest.mark.parametrize("name", APPS)
async def test_the_clock_moves_forward_by_any_amount_and_not_back(name: str) -> None:
    sim = make_simulator(name, 1)
    async with control(sim) as c:
        before = (await c.get("/_sim/clock")).json()
        moved = (await c.post("/_sim/clock", json={"advance": 8 * 86_400})).json()
        back = await c.post("/_sim/clock", json={"advance": -1})
    assert moved["offset_seconds"] - before["offset_seconds"] == 8 * 86_400 and moved["now"] > before["now"]
    assert back.status_code == 400 and sim.clock.offset == 8 * 86_400


@pytest.mark.parametrize("body", [{"purge": "all"}, {"create": [1]}, {"update": {"x": 3}}, {"shred": [1]}])
async def test_a_bad_mutation_is_a_400_naming_the_problem(body: dict[str, Any]) -> None:
    async with control(make_simulator(APPS[0], 1)) as c:
        answer = await c.post("/_sim/mutate", json=body)
    assert answer.status_code == 400 and answer.json()["error"]


async def test_unknown_fields_cannot_be_set() -> None:
    sim = make_simulator(APPS[0], 1)
    with pytest.raises(ValueError, match="unknown field"):
        sim.update(sim.ids(), {"salary": "1"})


def other_value(knob: Knob) -> Any:
    if knob.kind is bool:
        return not knob.default
    if knob.kind is str:
        return f"other{knob.default}"
    return (knob.default or 1) * 2 + 1


@pytest.mark.parametrize("name", APPS)
def test_every_constructor_knob_is_a_command_line_switch(name: str) -> None:
    simulator = make_simulator(name, 0).__class__
    argv: list[str] = []
    wanted = {}
    for knob in knobs(simulator):
        value = wanted[knob.name] = other_value(knob)
        argv += (
            [knob.flag if value is True else f"--no-{knob.flag[2:]}"] if knob.kind is bool else [knob.flag, str(value)]
        )
    make, _, rest = with_knobs(simulator, [*argv, "--port", "1"], "a simulator.")
    built = make(records=1, seed=0, token="t")
    assert getattr(make, "keywords", None) == wanted and rest[:2] == ["--port", "1"] and built.token == "t"
    assert {k.name for k in knobs(simulator)} == {n for n in wanted}


def test_the_cli_lists_the_knobs() -> None:
    listed = runner.invoke(app, ["connectors", "simulate", "hubspot", "--knobs"])
    assert listed.exit_code == 0 and "--search-per-second" in listed.output and "--webhook-batch-size" in listed.output


async def test_a_knob_given_to_the_cli_reaches_the_served_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **options: served.append(asgi))
    argv = ["connectors", "simulate", "hubspot", "--port", "8499", "--records", "3", "--search-per-second", "1"]
    assert runner.invoke(app, argv).exit_code == 0
    headers = {"Authorization": "Bearer sim-token"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served[0]), base_url="http://h") as c:
        first = await c.post("/crm/v3/objects/contacts/search", json={}, headers=headers)
        second = await c.post("/crm/v3/objects/contacts/search", json={}, headers=headers)
    assert first.status_code == 200 and second.status_code == 429 and second.json()["policyName"] == "SECONDLY"
