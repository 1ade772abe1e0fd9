"""Send what waits in the outbox: one tenant's connection (after the app was down, `inlet deliver`), or, run
by its schedule without parameters, every connection with work due, so parked and deferred deliveries are
retried by Prefect, not by a scheduler of ours.

The scheduled sweep is also the safety net of the incremental path: a connection whose inbox holds a change
older than `INLET_STRANDED_INBOX_SECONDS` (its notice was lost: a receiver killed between commit and notice,
a task worker or an automation that was down) is drained here first, unless a run is draining it already.

Each connection's drain is a `send-to-app` task holding a slot of the destination's Prefect global
concurrency limit (`inlet-destination-<host>-<hash>`, created with the destination's `concurrency`), so
the workers of every machine together keep to it. The run publishes the delivery figures as an artifact.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run

from connectors.tls import tls_context
from flows.artifacts import publish_delivery_status
from flows.incremental_import import apply_stranded
from flows.run_tags import label_run
from inlet.delivery import Destination, DrainResult, destination_for, drain
from inlet.errors import DeliveryError
from inlet.settings import get_settings
from inlet.store import Store, Vault, inbox, load_connection, outbox, shared_store

__all__ = ["deliver_outbox", "destination_slot"]


@asynccontextmanager
async def destination_slot(destination: Destination, wait_seconds: float = 600) -> AsyncIterator[None]:
    """Hold one slot of the destination's Prefect concurrency limit (created on first use)."""
    host = re.sub(r"[^a-z0-9]+", "-", destination.url.lower().split("://")[-1]).strip("-")[:40]
    name = f"inlet-destination-{host}-{hashlib.sha256(destination.key.encode()).hexdigest()[:8]}"
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                limit = GlobalConcurrencyLimitCreate(name=name, limit=destination.concurrency)
                await client.create_global_concurrency_limit(limit)
            except ObjectAlreadyExists:
                pass  # another run created it first
    async with concurrency(name, occupy=1, strict=True, lease_duration=60, timeout_seconds=wait_seconds):
        yield


@task(
    name="send-to-app", task_run_name="send-to-app/{tenant}/{connection}", cache_policy=NO_CACHE, persist_result=False
)
async def _send(tenant: str, connection: str, *, wait_for_others: bool = True) -> DrainResult:
    settings = get_settings()
    engine = shared_store(settings.store_url)
    loaded = load_connection(engine, Vault.from_settings(settings), tenant, connection)
    await label_run(tenant, connection, loaded.connection.app, loaded.connection.data_source)
    destination = destination_for(engine, settings, tenant)
    async with (
        destination_slot(destination),
        httpx.AsyncClient(timeout=destination.timeout_seconds, verify=tls_context()) as client,
    ):
        result = await drain(engine, loaded.connection.id, destination, client, wait_for_others=wait_for_others)
    if result.busy_elsewhere:
        get_run_logger().info("%s/%s: another run is sending its events; left to it", tenant, connection)
    return result


def _run_name() -> str:
    tenant, connection = flow_run.parameters.get("tenant"), flow_run.parameters.get("connection")
    return f"deliver-outbox/{tenant}/{connection}" if tenant and connection else "deliver-outbox/all"


async def _apply_stranded_changes(engine: Store, older_than_seconds: float) -> None:
    logger = get_run_logger()
    for tenant, connection, data_source in await anyio.to_thread.run_sync(inbox.stranded, engine, older_than_seconds):
        try:
            applied = await apply_stranded(tenant, connection, data_source, str(flow_run.id or ""))
        except Exception as exc:  # one connection's failure (say, needs_reauth) must not stop the sweep
            logger.error("%s/%s: its stranded changes stay in the inbox: %s", tenant, connection, exc)
            continue
        if applied is None:
            logger.info("%s/%s: a run is draining its inbox already", tenant, connection)
        else:
            logger.warning(
                "%s/%s: applied %d changes older than %.0f s that no run had picked up",
                tenant,
                connection,
                applied.inbox_events,
                older_than_seconds,
            )


@flow(name="deliver-outbox", flow_run_name=_run_name, persist_result=False)
async def deliver_outbox(tenant: str | None = None, connection: str | None = None) -> DrainResult:
    """Deliver one connection's pending events (it fails, keeping them, while the app does not take them),
    or, without parameters, every connection's due events (it completes while deliveries stay parked).

    Args:
        tenant: the tenant whose connection to deliver; empty: every tenant's due events.
        connection: the connection whose outbox to deliver; empty: every connection's due events.
    """
    settings = get_settings()
    engine = shared_store(settings.store_url)
    one = tenant is not None and connection is not None
    if not one:
        await _apply_stranded_changes(engine, settings.stranded_inbox_seconds)
    targets = [(tenant, connection)] if one else await anyio.to_thread.run_sync(outbox.due_connections, engine, tenant)
    # The sweep leaves a connection to a run already sending it (an import); `inlet deliver` waits for it.
    results = await asyncio.gather(*(_send(t, c, wait_for_others=one) for t, c in targets if t and c))
    total = DrainResult()
    for result in results:
        total.add(result)
    total.pending_left = any(r.pending_left for r in results)
    total.parked = any(r.parked for r in results)
    await publish_delivery_status(engine, settings)
    get_run_logger().info(
        "delivered %d events in %d batches to %d connections; dead letters: %d",
        total.delivered,
        total.batches,
        len(results),
        total.dead,
    )
    refused = next((r for r in results if r.refused), None)
    if refused is not None:  # a misconfigured destination fails even the scheduled drain: the operator must act
        raise DeliveryError(refused.failure() or "the team's app refused the deliveries")
    if one and (failure := total.failure()):
        raise DeliveryError(failure)
    return total
