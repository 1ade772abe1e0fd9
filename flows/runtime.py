"""What a run works with: its job parameters (a pydantic model, so the UI renders a form) and the
resources opened for it (store, connector, mapper, destination), kept out of task parameters.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from connectors.base import Connector, Page, PageGuard, PageRequest
from connectors.budget import RequestBudget
from connectors.registry import load, open_connector
from inlet.delivery import Destination
from inlet.destinations import destination_for
from inlet.mapping_store import build_mapper
from inlet.oauth import oauth_auth
from inlet.settings import Settings
from inlet.store import shared_store
from inlet.tenancy import LoadedConnection, load_connection
from inlet.vault import Vault
from mappings import RecordMapper

__all__ = ["ImportJob", "ImportRuntime", "Prefetcher", "open_runtime", "runtime_for"]


TenantId = Annotated[str, Field(description="tenant id, e.g. acme", pattern=r"^[a-z0-9][a-z0-9_-]*$")]
ConnectionId = Annotated[str, Field(description="connection id, e.g. acme-hubspot", min_length=1)]
DataSource = Annotated[str, Field(description="the universal data model, e.g. users", min_length=1)]


class ImportJob(BaseModel):
    """Which tenant's connection to import, and how."""

    tenant: str = Field(description="tenant id, e.g. acme", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    connection: str = Field(description="connection id, e.g. acme-hubspot", min_length=1)
    data_source: str = Field("users", description="the universal data model to import")
    restart: bool = Field(False, description="ignore an unfinished checkpoint and enumerate from the first page")
    force_delete: bool = Field(False, description="let the deletion sweep pass its mass-delete guard")


class Prefetcher:
    """Fetches the next page while the current one is mapped and written."""

    def __init__(self, connector: Connector, collection: str) -> None:
        self._connector = connector
        self._collection = collection
        self._pending: dict[PageRequest, asyncio.Task[Page]] = {}

    def start(self, request: PageRequest, seen: int) -> None:
        if request not in self._pending:
            self._pending[request] = asyncio.create_task(self._connector.fetch_page(self._collection, request, seen))

    async def take(self, request: PageRequest, seen: int) -> Page:
        task = self._pending.pop(request, None)
        if task is None:
            return await self._connector.fetch_page(self._collection, request, seen)
        return await task

    async def aclose(self) -> None:
        for task in self._pending.values():
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        self._pending.clear()


@dataclass
class ImportRuntime:
    """Resources of one run; tasks find them by run key instead of receiving them as parameters."""

    key: str
    job: ImportJob
    settings: Settings
    engine: Engine
    loaded: LoadedConnection
    connector: Connector
    collection: str
    mapper: RecordMapper
    destination: Destination
    app_client: httpx.AsyncClient
    prefetcher: Prefetcher
    guard: PageGuard
    records_per_task: int
    page_written: asyncio.Event = field(default_factory=asyncio.Event)
    events_written: int = 0  # since the last drain: the deliverer waits for a full batch

    async def aclose(self) -> None:
        await self.prefetcher.aclose()
        await self.connector.aclose()
        await self.app_client.aclose()
        _RUNTIMES.pop(self.key, None)


_RUNTIMES: dict[str, ImportRuntime] = {}


def runtime_for(key: str) -> ImportRuntime:
    return _RUNTIMES[key]


def open_runtime(job: ImportJob, settings: Settings, *, engine: Engine | None = None) -> ImportRuntime:
    """Load the connection, its connector and mapping, and the destination; fails before any page is read."""
    engine = engine or shared_store(settings.store_url)
    vault = Vault.from_settings(settings)
    loaded = load_connection(engine, vault, job.tenant, job.connection)
    auth = oauth_auth(engine, vault, settings, loaded)  # a connection flagged needs_reauth stops here
    app = loaded.connection.app
    spec, _ = load(app)
    collection = loaded.connection.collection or spec.collection_for(job.data_source)
    mapper = build_mapper(engine, settings, loaded.connection, job.data_source)
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
    runtime = ImportRuntime(
        key=uuid.uuid4().hex,
        job=job,
        settings=settings,
        engine=engine,
        loaded=loaded,
        connector=connector,
        collection=collection,
        mapper=mapper,
        destination=destination,
        app_client=httpx.AsyncClient(timeout=destination.timeout_seconds),
        prefetcher=Prefetcher(connector, collection),
        guard=PageGuard(connector.name, connector.spec.max_pages),
        records_per_task=settings.records_per_task,
    )
    _RUNTIMES[runtime.key] = runtime
    return runtime
