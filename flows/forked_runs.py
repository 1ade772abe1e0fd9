"""Served flow runs start as forks of a server that has already imported Prefect and inlet's flows.

Prefect's runner starts each run of a served flow in a new process with multiprocessing's "spawn" method
(`prefect.flow_engine.run_flow_in_subprocess`): a fresh interpreter that imports Prefect and inlet again, about
3 CPU-seconds here before the run does anything. `serve` starts a scheduler run a minute, a push-outbox run
every 30 s and a deliver-outbox run a minute, so that import alone was most of its 15 CPU-s a minute
(bench/RESULTS.md, "Sync at scale"), and it is most of a small flow run's cost.

With the "forkserver" method one server process imports those modules once and each run is a fork of it: a new
process with its own memory and pid, killed and waited for the same way, holding nothing of `serve` (the fork
server is a fresh interpreter that only imported modules: no threads, connections or event loop, checked by
`tests/flows/test_forked_runs.py`). Prefect's function is kept whole; only the start method it asks
multiprocessing for is swapped, in `prefect.flow_engine`'s namespace. flows/worker.py puts the same server
behind a Prefect process worker, for deployment runs.

The run's flow crosses to the child pickled. cloudpickle pickles a `Flow`'s function by value (the module
attribute of that name is the `Flow`, not the function), with only the globals its body names: parameter types
written as strings (`from __future__ import annotations`) then no longer resolve and the run fails validating its
parameters. So a flow that is its module's attribute is pickled by reference, as `python -m prefect.engine` would
load it by entrypoint.
"""

from __future__ import annotations

import copyreg
import importlib
import multiprocessing
import pickle
import sys
import types
from collections.abc import Iterable
from multiprocessing.context import BaseContext
from typing import Any

import prefect.flow_engine
from prefect import Flow

__all__ = ["start_runs_from_a_fork_server"]


def start_runs_from_a_fork_server(preload: Iterable[str]) -> None:
    """From now on, runs this process serves start as forks of a server that imported `preload` (module names)."""
    fork_server = multiprocessing.get_context("forkserver")
    fork_server.set_forkserver_preload(["prefect.flow_engine", *preload])
    setattr(prefect.flow_engine, "multiprocessing", _spawning_as(fork_server))  # noqa: B010
    copyreg.pickle(Flow, _reduce_flow)


def _reduce_flow(flow: Flow[..., Any]) -> str | tuple[Any, ...]:
    module, name = flow.fn.__module__, flow.fn.__name__
    if getattr(sys.modules.get(module), name, None) is flow:
        return (_module_flow, (module, name))
    return flow.__reduce_ex__(pickle.DEFAULT_PROTOCOL)  # a flow made at run time: pickled as before


def _module_flow(module: str, name: str) -> Flow[..., Any]:
    flow = getattr(importlib.import_module(module), name)
    assert isinstance(flow, Flow), f"{module}.{name} is not a flow"
    return flow


def _spawning_as(context: BaseContext) -> types.ModuleType:
    """`multiprocessing` as flow_engine sees it, with `get_context("spawn")` answered by `context`."""

    def get_context(method: str | None = None) -> BaseContext:
        return context if method == "spawn" else multiprocessing.get_context(method)

    shim = types.ModuleType(multiprocessing.__name__, multiprocessing.__doc__)
    shim.__dict__.update({name: value for name, value in vars(multiprocessing).items() if not name.startswith("__")})
    shim.__dict__["get_context"] = get_context
    return shim
