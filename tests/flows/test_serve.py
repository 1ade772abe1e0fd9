"""`inlet up` serves prefect.yaml's deployments (flows/serve.py reads them): one definition of the deployments
for `serve()` and for `prefect deploy --all`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.schedules import IntervalSchedule

from flows.serve import PREFECT_YAML, deployments


def project() -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    return specs


def test_serve_builds_every_deployment_of_prefect_yaml_as_written() -> None:
    served = {deployment.name: deployment for deployment in deployments()}
    assert list(served) == [spec["name"] for spec in project()]
    for spec in project():
        deployment = served[spec["name"]]
        assert (deployment.description, deployment.tags) == (spec["description"], spec["tags"])
        path, _, name = spec["entrypoint"].partition(":")  # run by module path: flows/x.py:f is flows.x.f
        assert deployment.entrypoint == path.removesuffix(".py").replace("/", ".") + "." + name
        assert len(deployment.schedules or []) == len(spec.get("schedules") or [])
        assert len(deployment.triggers) == len(spec.get("triggers") or [])
        assert deployment.enforce_parameter_schema is True


def test_the_outbox_sweep_is_served_every_minute_as_prefect_yaml_says() -> None:
    (sweep,) = [deployment for deployment in deployments() if deployment.name == "deliver-outbox"]
    (schedule,) = sweep.schedules or []
    assert isinstance(schedule.schedule, IntervalSchedule) and schedule.schedule.interval == timedelta(seconds=60)


def test_prefect_yaml_names_no_tenant_and_deploys_to_the_inlet_pool() -> None:
    for spec in project():
        assert "parameters" not in spec, spec["name"]
        assert all("parameters" not in schedule for schedule in spec.get("schedules") or []), spec["name"]
        assert spec["work_pool"]["name"] == "inlet-process" and spec["enforce_parameter_schema"] is True


def test_a_key_serve_cannot_serve_stops_it_with_its_name(tmp_path: Path) -> None:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    document["deployments"][0]["concurrency_limit"] = 2
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(document))
    unserved = r"'full-import' has keys flows/serve.py does not serve: \['concurrency_limit'\]"
    with pytest.raises(ValueError, match=unserved):
        deployments(tmp_path / "prefect.yaml")
