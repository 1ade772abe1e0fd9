"""Runs: a flow in this process (the CLI's `inlet import ...`), or a flow run of a deployment on the Prefect
server (the API's "start a full import"), which a worker or `inlet up`'s flow server picks up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inlet.errors import Unavailable
from inlet.local import FlowName, apply_prefect_env, run_flow
from inlet.service.installation import Installation
from inlet.store import load_connection

__all__ = ["StartedRun", "run_here", "start_full_import", "start_quarantine_retry"]


@dataclass(frozen=True)
class StartedRun:
    flow_run_id: str
    name: str
    deployment: str
    state: str


def run_here(inst: Installation, name: FlowName, tenant: str, connection: str, *args: Any, **options: Any) -> Any:
    """Run flow `name` for one tenant's connection in this process; what the flow returns."""
    return run_flow(inst.settings, name, tenant, connection, *args, **options)


def start_full_import(
    inst: Installation,
    tenant: str,
    connection: str,
    *,
    data_source: str | None = None,
    restart: bool = False,
    force_delete: bool = False,
) -> StartedRun:
    """A flow run of the `full-import` deployment for this connection (of the data source it holds, by default);
    Unavailable when the server lacks it."""
    loaded = load_connection(inst.engine, inst.vault, tenant, connection)
    job = {
        "tenant": tenant,
        "connection": connection,
        "data_source": data_source or loaded.connection.data_source,
        "restart": restart,
        "force_delete": force_delete,
    }
    return _start(inst, "full-import/full-import", {"job": job}, tags=[f"tenant:{tenant}"])


def start_quarantine_retry(
    inst: Installation, tenant: str, connection: str, ids: Sequence[int] = (), *, data_source: str = "users"
) -> StartedRun:
    """A flow run of the `retry-quarantine` deployment: map quarantined records again, deliver those that pass."""
    load_connection(inst.engine, inst.vault, tenant, connection)
    parameters = {"tenant": tenant, "connection": connection, "data_source": data_source, "ids": list(ids)}
    return _start(inst, "retry-quarantine/retry-quarantine", parameters, tags=[f"tenant:{tenant}"])


def _start(inst: Installation, deployment: str, parameters: dict[str, Any], *, tags: list[str]) -> StartedRun:
    apply_prefect_env(inst.settings)
    if "PREFECT_API_URL" not in os.environ:
        raise Unavailable(
            "no Prefect server answers (PREFECT_API_URL is unset and none runs on port "
            f"{inst.settings.prefect_port}): start one with `inlet up`, or run it here: "
            "`inlet import full --tenant TENANT --connection CONNECTION`"
        )
    return asyncio.run(_create_run(deployment, parameters, tags))


async def _create_run(deployment: str, parameters: dict[str, Any], tags: list[str]) -> StartedRun:
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        async with get_client() as client:
            try:
                found = await client.read_deployment_by_name(deployment)
            except ObjectNotFound:
                raise Unavailable(
                    f"the Prefect server has no deployment {deployment!r}: run `inlet up`, or deploy prefect.yaml "
                    "(`prefect deploy --all`) and start a worker"
                ) from None
            run = await client.create_flow_run_from_deployment(found.id, parameters=parameters, tags=tags)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the Prefect server did not answer: {type(exc).__name__}") from None
    return StartedRun(str(run.id), run.name, deployment, run.state_type.value if run.state_type else "SCHEDULED")
