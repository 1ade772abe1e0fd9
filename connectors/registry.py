"""Where connectors come from: the folders shipped here, folders on `INLET_CONNECTORS_PATH`, and entry points.

A connector is a folder holding a `connector.yaml` (its name is the folder's), with an optional `hooks.py`
and an optional `simulator` module or package with a `make_simulator(records, seed)` factory. Besides the
folders in this package, inlet reads:

- every sub-folder of the folders on `INLET_CONNECTORS_PATH` (separated like PATH: `:` on POSIX) that holds a
  connector.yaml, e.g. `INLET_CONNECTORS_PATH=/srv/inlet-connectors` with `/srv/inlet-connectors/acme/`;
- the entry points of the group `inlet.connectors` in installed distributions, each naming an importable
  package whose folder holds a connector.yaml (`acme = "acme_inlet.connector"` in `[project.entry-points]`).

A name given twice (an outside connector named like a built-in, or two outside ones) is an error naming both
places: a team renames its connector rather than silently shadowing another.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import httpx
from pydantic import SecretStr

from connectors.base import Connector, Hooks
from connectors.budget import RequestBudget
from connectors.egress import EgressPolicy
from connectors.errors import SpecError
from connectors.simulation import SimulatorBase
from connectors.spec import ConnectorSpec, RetryPolicy, load_spec

__all__ = [
    "CONNECTORS_DIR",
    "ENTRY_POINT_GROUP",
    "PATH_VARIABLE",
    "ConnectorFolder",
    "available",
    "builtin",
    "folder",
    "load",
    "make_simulator",
    "open_connector",
    "simulated",
    "simulator_module",
]

CONNECTORS_DIR = Path(__file__).parent
PATH_VARIABLE = "INLET_CONNECTORS_PATH"
ENTRY_POINT_GROUP = "inlet.connectors"
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


@dataclass(frozen=True)
class ConnectorFolder:
    """Where one connector lives: its folder, and the module its `hooks`/`simulator` import under."""

    name: str
    path: Path
    module: str  # dotted package name, importable or (outside folders) loaded from `path`
    origin: str  # what put it here, for messages: "built-in", "INLET_CONNECTORS_PATH ...", "entry point ..."

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"


def available() -> list[str]:
    """Names of every connector: built-in, on INLET_CONNECTORS_PATH and from entry points."""
    return sorted(_folders())


def builtin() -> list[str]:
    """Names of the connectors that ship with inlet."""
    return sorted(name for name, found in _folders().items() if found.builtin)


def folder(name: str) -> ConnectorFolder:
    """Where connector `name` lives; SpecError naming the available ones when there is none."""
    found = _folders().get(name)
    if found is None:
        raise SpecError(f"no connector {name!r}; available: {', '.join(available())}")
    return found


def simulated() -> list[str]:
    """Connectors whose folder holds a simulator with a `make_simulator` factory (the contract suite's)."""
    names = []
    for name, found in sorted(_folders().items()):
        if (found.path / "simulator.py").is_file() or (found.path / "simulator" / "__init__.py").is_file():
            if hasattr(_module(found, "simulator"), "make_simulator"):
                names.append(name)
    return names


def make_simulator(name: str, records: int, seed: int = 0) -> SimulatorBase:
    """A seeded simulator of connector `name`."""
    simulator: SimulatorBase = simulator_module(name).make_simulator(records=records, seed=seed)
    return simulator


def simulator_module(name: str) -> ModuleType:
    """The simulator module of connector `name` (its `make_simulator`, and `main` to serve it)."""
    return _module(folder(name), "simulator")


def load(name: str) -> tuple[ConnectorSpec, Hooks]:
    """The validated spec of a connector and its hooks, if it has a hooks.py."""
    return _load(folder(name))


@cache
def _load(found: ConnectorFolder) -> tuple[ConnectorSpec, Hooks]:
    path = found.path / "connector.yaml"
    spec = load_spec(path)
    if spec.name != found.name:
        raise SpecError(f"{path}: name is {spec.name!r} but the folder is {found.name!r}")
    hooks = Hooks()
    if (found.path / "hooks.py").is_file():
        module = _module(found, "hooks")
        hooks = Hooks(**{hook: getattr(module, hook) for hook in HOOK_NAMES if hasattr(module, hook)})
    return spec, hooks


def _folders() -> dict[str, ConnectorFolder]:
    """Every connector by name; SpecError when two places give the same name.

    Looked up once per INLET_CONNECTORS_PATH and sys.path (a connector is loaded on every webhook and run):
    a folder added later is seen by the processes started after it."""
    return _folders_for(os.environ.get(PATH_VARIABLE, ""), tuple(sys.path))


@cache
def _folders_for(path_value: str, syspath: tuple[str, ...]) -> dict[str, ConnectorFolder]:
    found: dict[str, ConnectorFolder] = {}
    candidates = [
        ConnectorFolder(p.parent.name, p.parent, f"connectors.{p.parent.name}", "built-in")
        for p in sorted(CONNECTORS_DIR.glob("*/connector.yaml"))
    ]
    candidates += _path_folders(path_value)
    candidates += _entry_point_folders()
    for candidate in candidates:
        if (other := found.get(candidate.name)) is not None and other.path.resolve() != candidate.path.resolve():
            raise SpecError(
                f"two connectors are named {candidate.name!r}: {other.path} ({other.origin}) and {candidate.path} "
                f"({candidate.origin}); rename the folder and the `name:` in its connector.yaml"
            )
        found.setdefault(candidate.name, candidate)
    return found


def _path_folders(value: str) -> list[ConnectorFolder]:
    folders = []
    for entry in filter(None, value.split(os.pathsep)):
        root = Path(entry).expanduser()
        if not root.is_dir():
            raise SpecError(f"{PATH_VARIABLE}: {root} is not a folder")
        for path in sorted(root.glob("*/connector.yaml")):
            name = path.parent.name
            module = f"inlet_connectors_{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]}.{name}"
            folders.append(ConnectorFolder(name, path.parent, module, f"{PATH_VARIABLE} {root}"))
    return folders


def _entry_point_folders() -> list[ConnectorFolder]:
    folders = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            package = importlib.import_module(point.value)
        except ImportError as exc:
            raise SpecError(f"entry point {point.name} = {point.value!r} ({ENTRY_POINT_GROUP}): {exc}") from None
        path = Path(package.__file__ or "").parent
        if not (path / "connector.yaml").is_file():
            raise SpecError(f"entry point {point.name} = {point.value!r}: {path} holds no connector.yaml")
        folders.append(ConnectorFolder(path.name, path, point.value, f"entry point {point.name}"))
    return folders


def _module(found: ConnectorFolder, part: str) -> ModuleType:
    """`hooks` or `simulator` of a connector: imported by name, or from an outside folder's files."""
    dotted = f"{found.module}.{part}"
    if dotted in sys.modules or not found.module.startswith("inlet_connectors_"):
        return importlib.import_module(dotted)
    _package(found.module.split(".")[0], found.path.parent)
    _package(found.module, found.path)
    return importlib.import_module(dotted)


def _package(name: str, path: Path) -> None:
    """Register `path` as package `name` (no __init__.py needed), so its modules import relative to it."""
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    assert spec is not None and spec.submodule_search_locations is not None
    spec.submodule_search_locations.append(str(path))
    sys.modules[name] = importlib.util.module_from_spec(spec)


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
