"""Prefect by the book: every deployment's parameters carry descriptions (the flows' Args: docstrings), the
automation has a name and a description, and `prefect deploy` refuses a server whose deployments `inlet up`
serves (prefect.yaml's build step)."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect import Flow
from prefect.events import DeploymentEventTrigger

from flows.deploy_guard import refuse_served_deployments, served_deployments
from flows.serve import PREFECT_YAML, _flow, deployments

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(PREFECT_YAML.read_text())
    return document


def flows() -> list[tuple[str, Flow[..., Any]]]:
    return [(spec["name"], _flow(spec["entrypoint"])) for spec in project()["deployments"]]


@pytest.mark.parametrize(("name", "flow"), flows(), ids=[name for name, _ in flows()])
def test_every_parameter_of_every_deployment_has_a_description(name: str, flow: Flow[..., Any]) -> None:
    assert flow.name == name  # deploy_guard finds a deployment as `<name>/<name>`
    properties = flow.parameters.properties
    assert set(properties) == set(inspect.signature(flow.fn).parameters)
    for parameter, schema in properties.items():
        assert schema.get("description"), f"{name}: parameter {parameter!r} has no description"
        assert f"{parameter}:" in (flow.description or ""), f"{name}: the docstring's Args: lacks {parameter!r}"


def test_the_automation_has_a_name_and_a_description_served_and_deployed_alike() -> None:
    (trigger,) = [t for spec in project()["deployments"] for t in spec.get("triggers") or []]
    assert trigger["name"] == "incremental-import on inlet.records.changed" and len(trigger["description"]) > 40
    (served,) = [t for d in deployments() for t in d.triggers]
    assert isinstance(served, DeploymentEventTrigger)
    assert (served.name, served.description) == (trigger["name"], trigger["description"])


def test_prefect_yaml_builds_with_the_guard_first() -> None:
    (step,) = project()["build"]
    assert list(step) == ["flows.deploy_guard.refuse_served_deployments"]


@pytest.fixture
def served_full_import(prefect_api: str) -> Iterator[str]:
    """`full-import/full-import` registered as `inlet up` registers it: by a runner, with no work pool."""
    from prefect.client.orchestration import get_client

    (deployment,) = [d for d in deployments() if d.name == "full-import"]
    deployment_id = deployment.apply()  # outside an event loop: the id itself
    assert isinstance(deployment_id, UUID)

    yield "full-import/full-import"

    async def delete() -> None:
        async with get_client() as client:
            await client.delete_deployment(deployment_id)

    asyncio.run(delete())


def test_the_guard_lets_a_deploy_through_to_a_server_without_served_deployments(prefect_api: str) -> None:
    assert asyncio.run(served_deployments()) == []
    assert refuse_served_deployments() == {"server": prefect_api}


def test_the_guard_stops_a_deploy_onto_deployments_inlet_up_serves(served_full_import: str) -> None:
    assert asyncio.run(served_deployments()) == [served_full_import]
    with pytest.raises(RuntimeError, match=r"serves full-import/full-import from `inlet up` \(no work pool\)"):
        refuse_served_deployments()


def test_the_guard_stops_a_deploy_that_would_go_to_a_temporary_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    probe = "from flows.deploy_guard import refuse_served_deployments\nrefuse_served_deployments()"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "PREFECT_API_URL is unset" in done.stderr
