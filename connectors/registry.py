"""The connectors that ship with inlet: every folder here that holds a connector.yaml."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import httpx
from pydantic import SecretStr

from connectors.base import Connector, Hooks
from connectors.budget import RequestBudget
from connectors.egress import EgressPolicy
from connectors.errors import SpecError
from connectors.simulation import SimulatorBase
from connectors.spec import ConnectorSpec, RetryPolicy, load_spec

__all__ = ["CONNECTORS_DIR", "available", "load", "make_simulator", "open_connector", "simulated"]

CONNECTORS_DIR = Path(__file__).parent
HOOK_NAMES = (
    "retry_after",
    "classify_error",
    "changes",
    "verify_webhook",
    "parse_webhook",
    "webhook_handshake",
    "webhook_account",
    "webhook_lifecycle",
)


def available() -> list[str]:
    """Names of the connectors found on disk."""
    return sorted(p.parent.name for p in CONNECTORS_DIR.glob("*/connector.yaml"))


def simulated() -> list[str]:
    """Connectors whose folder holds a simulator with a `make_simulator` factory (the contract suite's)."""
    names = []
    for name in available():
        folder = CONNECTORS_DIR / name
        if (folder / "simulator.py").is_file() or (folder / "simulator" / "__init__.py").is_file():
            module = importlib.import_module(f"connectors.{name}.simulator")
            if hasattr(module, "make_simulator"):
                names.append(name)
    return names


def make_simulator(name: str, records: int, seed: int = 0) -> SimulatorBase:
    """A seeded simulator of connector `name`."""
    module = importlib.import_module(f"connectors.{name}.simulator")
    simulator: SimulatorBase = module.make_simulator(records=records, seed=seed)
    return simulator


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
        hooks = Hooks(**{name: getattr(module, name) for name in HOOK_NAMES if hasattr(module, name)})
    return spec, hooks


def open_connector(
    name: str,
    *,
    parameters: Mapping[str, str] | None = None,
    credentials: Mapping[str, SecretStr] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    budget: RequestBudget | None = None,
    auth: httpx.Auth | None = None,
    egress: EgressPolicy | None = None,
) -> Connector:
    """A ready connector for one connection; `retry` overrides the connector's own retry policy, `auth` its auth,
    `egress` what the egress guard lets through beyond public addresses."""
    spec, hooks = load(name)
    return Connector(
        spec,
        parameters=parameters,
        credentials=credentials,
        hooks=hooks,
        transport=transport,
        retry=retry,
        budget=budget,
        auth=auth,
        egress=egress,
    )
