"""Tags on every run (tenant, connection, app, data source; named by `inlet.service.run_tags`), so the Prefect
UI filters runs by them and `inlet status` finds a connection's runs.

A run that a deployment, a schedule or a trigger created carries only the deployment's tags; the flow adds
the connection's own when it starts. Background `apply-inbox` runs get them when they are submitted.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

from inlet.tags import run_tags

__all__ = ["label_run"]


async def label_run(tenant: str, connection: str, app: str, data_source: str) -> None:
    """Add the connection's tags to the flow run this code runs in (nothing outside a flow run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    current = list(context.flow_run.tags)
    missing = [tag for tag in run_tags(tenant, connection, app, data_source) if tag not in current]
    if missing:
        async with get_client() as client:
            await client.update_flow_run(context.flow_run.id, tags=[*current, *missing])
        context.flow_run.tags = [*current, *missing]
