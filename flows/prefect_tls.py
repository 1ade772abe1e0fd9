"""Prefect's API clients share one TLS context per process, as inlet's own clients do (`connectors.tls`).

`PrefectClient` and `SyncPrefectClient` build a new `ssl.SSLContext` and load certifi's bundle into it each time
one is made (~35 ms of CPU here), and Prefect makes them often: a sync and an async client per task run, one per
lease-renewal thread, one per `get_client()`. py-spy put 28-39% of a task worker's active samples in
`ssl.create_default_context` (bench/RESULTS.md, "Sync at scale" and "Incremental latency"). The clients build
their verifying context from the same settings every time and never change it, so their module is given an `ssl`
whose `create_default_context` returns one context per argument set when a CA file is named (the verifying
path). The insecure path (`PREFECT_API_TLS_INSECURE_SKIP_VERIFY`) changes the context it gets, so it still gets a
new one. Upstream: PrefectHQ/prefect#19106; remove once Prefect shares its context.
"""

from __future__ import annotations

import ssl
import types
from functools import cache
from typing import Any

import prefect.client.orchestration as orchestration

__all__ = ["share_prefect_tls_context"]


def share_prefect_tls_context() -> None:
    """Make Prefect's API clients in this process share their verifying TLS context (idempotent)."""
    orchestration.ssl = _SHARING_SSL  # type: ignore[attr-defined]


@cache
def _verifying_context(purpose: ssl.Purpose, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(purpose, cafile=cafile, capath=capath)


def _create_default_context(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: Any = None,
) -> ssl.SSLContext:
    if cadata is None and (cafile or capath):
        return _verifying_context(purpose, cafile, capath)
    return ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)


_SHARING_SSL = types.ModuleType("ssl", ssl.__doc__)
_SHARING_SSL.__dict__.update({name: value for name, value in vars(ssl).items() if not name.startswith("__")})
_SHARING_SSL.create_default_context = _create_default_context  # type: ignore[attr-defined]
