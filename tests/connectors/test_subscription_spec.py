"""`subscriptions:` in connector.yaml: validated when loaded, its templates filled with known values only."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from connectors.registry import load
from connectors.subscriptions import SubscriptionSpec, fill

_CALLS: dict[str, Any] = {
    "create": {"method": "POST", "path": "/hooks", "json": {"url": "{notification_url}"}, "id_path": "id"},
    "delete": {"method": "DELETE", "path": "/hooks/{subscription_id}"},
}


def test_graph_pipedrive_and_zendesk_declare_subscriptions_and_the_others_poll() -> None:
    declared = {name for name in ("msgraph", "pipedrive", "zendesk", "hubspot", "kinto") if load(name)[0].subscriptions}
    assert declared == {"msgraph", "pipedrive", "zendesk"}


def test_an_unknown_placeholder_is_refused_when_the_spec_loads() -> None:
    with pytest.raises(ValidationError, match="unknown placeholders"):
        SubscriptionSpec.model_validate({**_CALLS, "delete": {"method": "DELETE", "path": "/hooks/{token}"}})


def test_a_lifetime_without_renew_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs `renew:`"):
        SubscriptionSpec.model_validate({**_CALLS, "lifetime_seconds": 60})


def test_fill_replaces_known_fields_in_nested_bodies_and_leaves_other_braces() -> None:
    body = {"a": ["{secret}", {"{connection}": "x {tenant} {other}"}], "n": 3}
    filled = fill(body, {"secret": "s", "connection": "c", "tenant": "t"})
    assert filled == {"a": ["s", {"c": "x t {other}"}], "n": 3}
