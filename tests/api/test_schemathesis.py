"""Schemathesis against the API's own OpenAPI document, over real HTTP: generated calls to every operation with an
admin key get no 5xx, and every answer (problems included) matches the documented status codes, media types and
schemas. Bounded: a handful of derandomized examples per operation (a few hundred calls in all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from inlet.api import create_api
from inlet.service import Installation
from inlet.settings import Settings
from inlet.store import create_store_engine
from tests.api.conftest import ApiWorld

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# The document does not depend on the store: build it once, from an app on an empty in-memory store.
schema = schemathesis.openapi.from_dict(
    create_api(Installation(Settings(home=Path("unused")), create_store_engine("sqlite://"))).openapi()
)


@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case[Any], world: ApiWorld) -> None:
    headers = {"Authorization": f"Bearer {world.keys['admin']}"}
    case.call_and_validate(base_url=world.url + "/api", headers=headers, checks=CHECKS)
