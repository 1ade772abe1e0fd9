"""Field coverage (issue 17): on simulated data, every app field the source has a value for is mapped to a value
by the connector's `udm_fields` and the default users mapping, per connector: each connector with a simulator
(over ASGI), and Kinto and json-server as real processes. A field the source has but the mapping sends as null
(`phone` from Kinto and json-server, once) fails, naming the field and both shares."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.egress import EgressPolicy
from connectors.registry import load, make_simulator, open_connector, simulated
from mappings import RecordError, effective_mapping
from mappings.pipeline import RecordMapper
from tests.support.oauth import SIMULATOR_EGRESS
from tests.support.real_apps import KintoServer

# What counts as the source having a field: a non-empty string under a key (path) of this shape.
CONCEPTS = {
    "email": r"mail",
    "phone": r"phone|mobile",
    "company": r"company|organi[sz]ation",
    "title": r"title",
    "firstName": r"first_?name|given",
    "lastName": r"last_?name|family|surname",
}
SAMPLE = 25
# The shape of a person in a schemaless source (Kinto, json-server): the JSONPlaceholder users' fields.
PEOPLE = [
    {
        "email": f"user{i}@example.org",
        "name": f"User {i}",
        "phone": f"+1 555 01{i:02d}",
        "company": {"name": f"Company {i % 3}"},
        "title": "Engineer",
    }
    for i in range(SAMPLE)
]


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every scalar, list items under their list's path."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from leaves(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from leaves(inner, path)
    else:
        yield path, value


def has(raw: Mapping[str, Any], concept: str) -> bool:
    pattern = re.compile(CONCEPTS[concept], re.IGNORECASE)
    return any(isinstance(v, str) and v.strip() and pattern.search(p) for p, v in leaves(raw))


def mapper(app: str, drop: tuple[str, ...] = ()) -> RecordMapper:
    spec, _ = load(app)
    collection = spec.collection_for("users")
    udm_fields = {k: v for k, v in spec.collections[collection].fields_for("users").items() if k not in drop}
    return RecordMapper(
        data_source="users",
        udm_fields=udm_fields,
        app_mapping=effective_mapping("users", app=app),
        origin=f"connectors/{app}/connector.yaml",
    )


def coverage(app: str, raws: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> dict[str, tuple[float, float]]:
    """Per app field: (share of records the source has it for, share mapped to a non-null value)."""
    assert len(raws) >= 5, f"{app}: too few records to judge ({len(raws)})"
    map_one = mapper(app, drop).map
    mapped = []
    for raw in raws:
        try:
            mapped.append(map_one(raw))
        except RecordError as exc:
            pytest.fail(f"{app}: the default mapping fails on a simulated record: {exc}")
    return {
        field: (
            sum(has(raw, field) for raw in raws) / len(raws),
            sum(record.get(field) not in (None, "") for record in mapped) / len(raws),
        )
        for field in CONCEPTS
    }


def assert_covered(app: str, shares: dict[str, tuple[float, float]]) -> None:
    # Shares, not all-or-nothing: a source may hold a value the mapping rightly passes over (a secondary phone);
    # it must not lose most of what the source has.
    lost = {
        field: f"source {source:.0%}, mapped {mapped:.0%}"
        for field, (source, mapped) in shares.items()
        if source > 0 and mapped < 0.9 * source
    }
    assert not lost, f"{app}: fields the source has are sent as null: {lost}"


async def simulated_raws(app: str) -> list[dict[str, Any]]:
    sim = make_simulator(app, SAMPLE)
    parameters, credentials = sim.connection("https://simulator.test")
    async with open_connector(
        sim.connector,
        parameters=parameters,
        credentials=credentials,
        transport=httpx.ASGITransport(app=sim.app),
        egress=SIMULATOR_EGRESS,
    ) as connector:
        collection = load(app)[0].collection_for("users")
        return [dict(r) async for page in connector.pages(collection) for r in page.records]


@pytest.mark.parametrize("app", simulated())
async def test_simulated_connectors_map_every_field_their_source_has(app: str) -> None:
    assert_covered(app, coverage(app, await simulated_raws(app)))


LOOPBACK = EgressPolicy(allow_hosts=frozenset({"127.0.0.1"}))


@pytest.mark.real_app
async def test_kinto_maps_every_field_its_records_have(kinto_collection: KintoServer) -> None:
    for person in PEOPLE:
        kinto_collection.create(person)
    params = {"base_url": kinto_collection.base_url, "collection": kinto_collection.collection}
    creds = {"username": SecretStr("admin"), "password": SecretStr("s3cret")}
    async with open_connector("kinto", parameters=params, credentials=creds, egress=LOOPBACK) as kinto:
        raws = [dict(r) async for page in kinto.pages("records") for r in page.records]
    shares = coverage("kinto", raws)
    assert shares["phone"] == (1.0, 1.0) and shares["company"] == (1.0, 1.0)
    assert_covered("kinto", shares)


@pytest.mark.real_app
async def test_json_server_maps_every_field_its_records_have(json_server_factory: Any) -> None:
    server = json_server_factory(0)
    for person in PEOPLE:
        server.add_user(person)
    async with open_connector(
        "json_server", parameters={"base_url": server.base_url}, credentials={}, egress=LOOPBACK
    ) as js:
        raws = [dict(r) async for page in js.pages("users") for r in page.records]
    shares = coverage("json_server", raws)
    assert shares["phone"] == (1.0, 1.0) and shares["company"] == (1.0, 1.0)
    assert_covered("json_server", shares)


def test_the_check_fails_a_spec_that_drops_a_field_the_source_has() -> None:
    """json-server's spec as it was before issue 17 (no phone, no company, no title) fails the check."""
    raws = [{"id": i + 1, "updatedAt": 1_700_000_000_000, **person} for i, person in enumerate(PEOPLE)]
    assert_covered("json_server", coverage("json_server", raws))
    with pytest.raises(AssertionError, match=r"'phone': 'source 100%, mapped 0%'"):
        assert_covered("json_server", coverage("json_server", raws, drop=("phone", "company", "title")))
