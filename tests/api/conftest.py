"""One inlet server (receiver, API, pages) over real HTTP on 127.0.0.1 for the API tests, with a HubSpot simulator,
API keys of each scope and tenants `acme` (a connection, stored records) and `globex`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors.registry import make_simulator
from connectors.simulation import SimulatorBase
from inlet.api import create_server
from inlet.demo import USERS_SCHEMA
from inlet.local import free_port
from inlet.service import Installation, create_api_key, create_tenant, initialise, open_installation
from inlet.settings import ApiSettings, AppSchemaSettings, EgressSettings, Settings
from tests.support.serving import serve_in_thread

SCHEMAS = "schemas"


@dataclass
class ApiWorld:
    inst: Installation
    url: str
    sim: SimulatorBase
    sim_url: str
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, scope: str | None = "admin", token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.keys[scope or 'admin']}"} if scope or token else {}
        return httpx.Client(base_url=self.url + "/api", headers=headers, timeout=30)

    def call(self, method: str, path: str, scope: str = "admin", **kwargs: Any) -> httpx.Response:
        with self.client(scope) as http:
            return http.request(method, path, **kwargs)

    def hubspot(self, **extra: Any) -> dict[str, Any]:
        """A connection body that reaches the simulator with good credentials."""
        parameters, credentials = self.sim.connection(self.sim_url)
        secrets = {k: v.get_secret_value() for k, v in credentials.items()}
        return {"app": "hubspot", "parameters": parameters, "credentials": secrets, **extra}


def make_settings(home: Path, **api: Any) -> Settings:
    return Settings(
        home=home,
        prefect_port=free_port(),  # nothing answers there: a Prefect server another session runs is never used
        app_schema=AppSchemaSettings(folder=home / SCHEMAS),
        api=ApiSettings(**api),
        egress=EgressSettings(allow_hosts=["127.0.0.1"]),  # the simulators listen there, allowed as an operator would
    )


def demo_schema(home: Path, **properties: Any) -> None:
    """The demo app's users schema (with `properties` replaced) as the static app schema."""
    folder = home / SCHEMAS
    folder.mkdir(parents=True, exist_ok=True)
    schema = {**USERS_SCHEMA, "properties": {**USERS_SCHEMA["properties"], **properties}}
    (folder / "users.yaml").write_text(yaml.safe_dump(schema))


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    home = tmp_path_factory.mktemp("api") / "home"
    settings = make_settings(home, sessions_per_minute=5)
    initialise(settings)
    inst = open_installation(settings)
    sim = make_simulator("hubspot", 30)
    with serve_in_thread(sim.app) as sim_url, serve_in_thread(create_server(inst, lambda t, c: None)) as url:
        found = ApiWorld(inst, url, sim, sim_url)
        for scope in ("read", "write", "admin"):
            found.keys[scope] = create_api_key(inst, f"{scope} key", [scope])[1]
        for tenant in ("acme", "globex"):
            create_tenant(inst, tenant)
        yield found


def store_raw_records(world: ApiWorld, tenant: str, connection: str) -> list[dict[str, Any]]:
    """The simulator's records, kept in the ledger as a full import keeps them (for previews)."""
    import asyncio

    import orjson
    from sqlmodel import Session

    from connectors.registry import open_connector
    from inlet.store import LedgerEntry

    parameters, credentials = world.sim.connection(world.sim_url)

    async def listing() -> list[dict[str, Any]]:
        egress = world.inst.settings.egress.policy()
        opened = open_connector("hubspot", parameters=parameters, credentials=credentials, egress=egress)
        async with opened as connector:
            return [r async for page in connector.pages("contacts") for r in page.records]

    records = asyncio.run(listing())
    with Session(world.inst.engine) as session:
        for record in records:
            session.add(
                LedgerEntry(
                    connection_id=connection,
                    data_source="users",
                    external_id=str(record["id"]),
                    payload_hash="-",
                    version=1,
                    first_seen_run="test",
                    last_seen_run="test",
                    raw=orjson.dumps(record).decode(),
                )
            )
        session.commit()
    return records
