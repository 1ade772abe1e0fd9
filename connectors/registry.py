"""The connectors that ship with inlet: every folder here that holds a connector.yaml."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import httpx
from pydantic import SecretStr

from connectors.base import Connector, Hooks
from connectors.errors import SpecError
from connectors.spec import ConnectorSpec, RetryPolicy, load_spec

__all__ = ["CONNECTORS_DIR", "available", "load", "open_connector"]

CONNECTORS_DIR = Path(__file__).parent


def available() -> list[str]:
    """Names of the connectors found on disk."""
    return sorted(p.parent.name for p in CONNECTORS_DIR.glob("*/connector.yaml"))


@cache
def load(name: str) -> tuple[ConnectorSpec, Hooks]:
    """The validated spec of a connector and its hooks, if it has a hooks.py."""
    path = CONNECTORS_DIR / name / "connector.yaml"
    if not path.is_file():
        raise SpecError(f"no connector {name!r}; available: {', '.join(available())}")
    spec = load_spec(path)
    if spec.name != name:
        raise SpecError(f"{path}: name is {spec.name!r} but the folder is {name!r}")
    hooks = Hooks()
    if (path.parent / "hooks.py").is_file():
        module = importlib.import_module(f"connectors.{name}.hooks")
        hooks = Hooks(retry_after=getattr(module, "retry_after", None))
    return spec, hooks


def open_connector(
    name: str,
    *,
    parameters: Mapping[str, str] | None = None,
    credentials: Mapping[str, SecretStr] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
) -> Connector:
    """A ready connector for one connection; `retry` overrides the connector's own retry policy."""
    spec, hooks = load(name)
    return Connector(
        spec, parameters=parameters, credentials=credentials, hooks=hooks, transport=transport, retry=retry
    )
