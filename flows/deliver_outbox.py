"""Send what waits in the outbox of one tenant's connection (after the app was down, or on a schedule)."""

from __future__ import annotations

import httpx
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.run_tags import label_run
from inlet.delivery import Destination, DrainResult, drain
from inlet.errors import DeliveryError
from inlet.settings import get_settings
from inlet.store import open_store
from inlet.tenancy import load_connection
from inlet.vault import Vault

__all__ = ["deliver_outbox"]


@task(name="send-to-app", cache_policy=NO_CACHE, persist_result=False)
async def _send(tenant: str, connection: str) -> DrainResult:
    settings = get_settings()
    engine = open_store(settings.store_url)
    loaded = load_connection(engine, Vault.from_settings(settings), tenant, connection)
    await label_run(tenant, connection, loaded.connection.app, loaded.connection.data_source)
    destination = Destination.from_settings(settings)
    async with httpx.AsyncClient(timeout=destination.timeout_seconds) as client:
        return await drain(engine, loaded.connection.id, destination, client)


@flow(name="deliver-outbox", flow_run_name="deliver-outbox/{tenant}/{connection}", persist_result=False)
async def deliver_outbox(tenant: str, connection: str) -> DrainResult:
    """Deliver one connection's pending events; fails, keeping them, while the app does not take them."""
    result = await _send(tenant, connection)
    get_run_logger().info("delivered %d events in %d batches", result.delivered, result.batches)
    if result.pending_left:
        raise DeliveryError(f"the team's app did not take the events: {result.last_error}")
    return result
