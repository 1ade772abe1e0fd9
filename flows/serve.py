"""Serve inlet's deployments from this process (what `inlet up` runs), so manual runs from the UI work.

The deployments are prefect.yaml's, read from it: the same names, descriptions, tags, parameters, schedules
and triggers that `prefect deploy --all` creates on a work pool, so the two never disagree. A key of
prefect.yaml this module cannot serve stops it with a message, rather than being dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.client.schemas.schedules import construct_schedule
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentTriggerTypes
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner
from prefect.types.entrypoint import EntrypointType
from pydantic import TypeAdapter

from flows.forked_runs import start_runs_from_a_fork_server

__all__ = ["PREFECT_YAML", "deployments", "main", "served_flows"]

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"
_SERVED = {
    "name",
    "description",
    "entrypoint",
    "tags",
    "parameters",
    "schedules",
    "triggers",
    "enforce_parameter_schema",
}
_ON_A_POOL_ONLY = {"work_pool"}  # a served deployment runs in this process
_WHEN = ("interval", "cron", "rrule", "timezone", "anchor_date")
_SCHEDULE_OPTIONS = ("parameters", "active", "slug")
_triggers: TypeAdapter[DeploymentTriggerTypes] = TypeAdapter(DeploymentTriggerTypes)


def deployments(project: Path = PREFECT_YAML) -> list[RunnerDeployment]:
    """prefect.yaml's deployments, as `serve()` takes them."""
    return [_sync(flow.to_deployment(**options)) for flow, options in served_flows(project)]


def served_flows(project: Path = PREFECT_YAML) -> list[tuple[Flow[..., Any], dict[str, Any]]]:
    """prefect.yaml's deployments as a flow and the options `to_deployment` and `Runner.add_flow` take."""
    document = yaml.safe_load(project.read_text())
    return [_served(spec) for spec in document["deployments"]]


def _served(spec: dict[str, Any]) -> tuple[Flow[..., Any], dict[str, Any]]:
    name = spec["name"]
    _refuse_unknown(f"deployment {name!r}", spec, _SERVED | _ON_A_POOL_ONLY)
    options = {
        "name": name,
        "description": spec.get("description"),
        "tags": spec.get("tags"),
        "parameters": spec.get("parameters"),
        "schedules": [_schedule(name, schedule) for schedule in spec.get("schedules") or []],
        "triggers": [_triggers.validate_python(trigger) for trigger in spec.get("triggers") or []],
        "enforce_parameter_schema": spec.get("enforce_parameter_schema", True),
        # a run imports its flow as `flows.<module>`, not as a script named after the file: a background task it
        # submits (.delay()) carries the flow in its context, pickled by reference, and a task worker must import it
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    return _flow(spec["entrypoint"]), options


def _flow(entrypoint: str) -> Flow[..., Any]:
    """The flow an entrypoint such as `flows/full_import.py:full_import` names, imported as a module."""
    path, _, attribute = entrypoint.partition(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), attribute)
    if not isinstance(flow, Flow):
        raise ValueError(f"prefect.yaml: entrypoint {entrypoint!r} is not a flow")
    return flow


def _schedule(deployment: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A schedule as `prefect deploy` reads it: when (interval seconds, cron or rrule) and its options."""
    _refuse_unknown(f"a schedule of {deployment!r}", spec, {*_WHEN, *_SCHEDULE_OPTIONS})
    when = construct_schedule(**{key: spec[key] for key in _WHEN if key in spec})
    return {"schedule": when} | {key: spec[key] for key in _SCHEDULE_OPTIONS if key in spec}


def _refuse_unknown(what: str, spec: dict[str, Any], served: set[str]) -> None:
    unknown = sorted(set(spec) - served)
    if unknown:
        raise ValueError(f"prefect.yaml: {what} has keys flows/serve.py does not serve: {unknown}")


def _sync(deployment: RunnerDeployment | Coroutine[Any, Any, RunnerDeployment]) -> RunnerDeployment:
    # `to_deployment` is sync-compatible: called outside an event loop it returns the deployment itself.
    assert isinstance(deployment, RunnerDeployment)
    return deployment


def main() -> None:
    """Serve prefect.yaml's deployments; each run starts as a fork of a server that imported the flows."""
    served = served_flows()
    start_runs_from_a_fork_server(sorted({flow.fn.__module__ for flow, _ in served}))
    runner = Runner(limit=4, pause_on_shutdown=True)
    for flow, options in served:
        # given as a flow, not a deployment: the runner then starts a run from the flow it holds
        # (`run_flow_in_subprocess`, forked) rather than by `python -m prefect.engine` importing it again
        runner.add_flow(flow, **options)
    print(f"serving {', '.join(options['name'] for _, options in served)}; Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt, TerminationSignal):
        asyncio.run(runner.start())


if __name__ == "__main__":
    main()
