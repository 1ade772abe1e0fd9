"""A build step of prefect.yaml: `prefect deploy` stops before it registers anything when it would deploy to a
temporary server, or take over the deployments that `inlet up` serves.

`inlet up` serves prefect.yaml's deployments from its own process (flows/serve.py, no work pool). The same names
deployed with `prefect deploy --all` onto that server would move them to the work pool, and their runs would be
split between `inlet up`'s flow server and the workers. A deployment without a work pool is a served one: if the
server has one under any of prefect.yaml's names, this step fails the deploy and says what to do instead.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["refuse_served_deployments", "served_deployments"]

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


def refuse_served_deployments(**_: Any) -> dict[str, str]:
    """The build step: raises RuntimeError (which fails `prefect deploy`) when deploying here would harm."""
    from prefect.settings import get_current_settings

    url = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url
    if not url:
        raise RuntimeError(
            "PREFECT_API_URL is unset: `prefect deploy` would register inlet's deployments on a temporary server "
            "that is gone when it exits. Set it to your server, e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    served = asyncio.run(served_deployments())
    if served:
        raise RuntimeError(
            f"the Prefect server at {url} serves {', '.join(served)} from `inlet up` (no work pool): deploying "
            "would take them over and split their runs. Deploy to a Prefect server of your own, or stop `inlet up` "
            "and delete them first (`prefect deployment delete <name>`)"
        )
    return {"server": str(url)}


async def served_deployments(project: Path = PREFECT_YAML) -> list[str]:
    """prefect.yaml's deployments that the server has without a work pool (served by a `serve()` process)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    names = [_full_name(spec) for spec in yaml.safe_load(project.read_text())["deployments"]]
    found = []
    async with get_client() as client:
        for name in names:
            try:
                deployment = await client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            if not deployment.work_pool_name:
                found.append(name)
    return found


def _full_name(spec: dict[str, Any]) -> str:
    """`<flow name>/<deployment name>`; every flow of inlet is named as its deployment in prefect.yaml."""
    return f"{spec['name']}/{spec['name']}"
