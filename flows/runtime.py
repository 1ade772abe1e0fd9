"""What a run works with: its parameters (pydantic types, so the UI renders a form and validates it) and the
resources opened for it (store, connector, mapper, destination), handed to its tasks by reference.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, cast

import httpx
from prefect.utilities.annotations import quote
from pydantic import BaseModel, Field

from connectors.base import Connector
from connectors.budget import RequestBudget
from connectors.registry import load, open_connector
from connectors.tls import tls_context
from inlet.delivery import Destination, Handoff, destination_for
from inlet.errors import ConfigError
from inlet.mapping import build_mapper
from inlet.oauth import oauth_auth
from inlet.settings import Settings
from inlet.store import LoadedConnection, Store, Vault, load_connection, shared_store
from mappings import RecordMapper

__all__ = [
    "ConnectionId",
    "DataSource",
    "ImportJob",
    "ImportRuntime",
    "TenantId",
    "TriggeringEvent",
    "by_reference",
    "open_runtime",
]


TenantId = Annotated[str, Field(description="tenant id, e.g. demo", pattern=r"^[a-z0-9][a-z0-9_-]*$")]
ConnectionId = Annotated[str, Field(description="connection id, e.g. demo-hubspot", min_length=1)]
DataSource = Annotated[str, Field(description="the universal data model, e.g. users", min_length=1)]


class TriggeringEvent(BaseModel):
    """The `inlet.records.changed` event that started an incremental run (its page in the Prefect UI)."""

    id: str = Field(description="the Prefect event's id")
    occurred: str = Field(description="when it occurred (ISO 8601)")

    def ui_path(self) -> str:
        return f"/events/event/{self.occurred[:10]}/{self.id}"


class ImportJob(BaseModel):
    """Which tenant's connection to import, and how."""

    tenant: str = Field(description="tenant id, e.g. demo", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    connection: str = Field(description="connection id, e.g. demo-hubspot", min_length=1)
    data_source: str | None = Field(
        None, description="the universal data model to import; default: the one the connection holds"
    )
    restart: bool = Field(False, description="ignore an unfinished checkpoint and enumerate from the first page")
    force_delete: bool = Field(False, description="let the deletion sweep pass its mass-delete guard")


@dataclass
class ImportRuntime:
    """Resources of one run; its tasks take it as an argument, passed `by_reference`."""

    job: ImportJob
    settings: Settings
    engine: Store
    loaded: LoadedConnection
    connector: Connector
    collection: str
    mapper: RecordMapper
    destination: Destination
    app_client: httpx.AsyncClient
    records_per_task: int
    handoff: Handoff  # the pages' events, from the writer to the sender in memory
    page_written: asyncio.Event = field(default_factory=asyncio.Event)
    importing_done: asyncio.Event = field(default_factory=asyncio.Event)  # the last page is written
    events_written: int = 0  # since the last drain: the deliverer waits for a full batch

    @property
    def data_source(self) -> str:
        """The data model this run imports: the job's, which `open_runtime` checked against the connection's."""
        return self.job.data_source or self.loaded.connection.data_source

    async def aclose(self) -> None:
        await self.connector.aclose()
        await self.app_client.aclose()


def by_reference(run: ImportRuntime) -> ImportRuntime:
    """The runtime as a task argument Prefect neither walks nor records (`quote`): it holds clients, a
    connection's credentials and asyncio state, and the task must get this very object, not a rebuilt copy.
    The task receives it unwrapped; its run shows the argument without a value."""
    return cast(ImportRuntime, quote(run))


def open_runtime(job: ImportJob, settings: Settings, *, engine: Store | None = None) -> ImportRuntime:
    """Load the connection, its connector and mapping, and the destination; fails before any page is read."""
    engine = engine or shared_store(settings.store_url)
    vault = Vault.from_settings(settings)
    loaded = load_connection(engine, vault, job.tenant, job.connection)
    held = loaded.connection.data_source
    if job.data_source is None:
        job = job.model_copy(update={"data_source": held})
    elif held != job.data_source:  # another model's mapping and ledger would make wrong data under "Completed"
        raise ConfigError(
            f"connection {job.connection!r} holds {held!r}, not {job.data_source!r}: run it with data source {held!r}"
        )
    auth = oauth_auth(engine, vault, settings, loaded)  # a connection flagged needs_reauth stops here
    app = loaded.connection.app
    spec, _ = load(app)
    collection = loaded.connection.collection or spec.collection_for(held)
    mapper = build_mapper(engine, settings, loaded.connection, held)
    budget = settings.source_budget
    connector = open_connector(
        app,
        parameters=loaded.connection.parameters,
        credentials=loaded.credentials,
        retry=settings.source_retry,
        budget=RequestBudget(budget.requests, budget.per_seconds) if budget else None,
        auth=auth,
        egress=settings.egress.policy(),  # the parameters are checked again here, before any request
    )
    destination = destination_for(engine, settings, job.tenant)
    return ImportRuntime(
        job=job,
        settings=settings,
        engine=engine,
        loaded=loaded,
        connector=connector,
        collection=collection,
        mapper=mapper,
        destination=destination,
        app_client=httpx.AsyncClient(timeout=destination.timeout_seconds, verify=tls_context()),
        records_per_task=settings.records_per_task,
        handoff=Handoff(destination.lease_seconds, capacity=2 * destination.batch_size),
    )
