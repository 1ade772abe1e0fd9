"""A test tenant's account connected straight in the store, and its full import run in this process."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from flows.full_import import ImportSummary, full_import
from flows.runtime import ImportJob
from inlet.store import Vault, add_connection, open_store
from tests.conftest import InletEnv

__all__ = ["connect", "import_full"]


def connect(
    env: InletEnv,
    connection: str,
    app: str,
    parameters: dict[str, str],
    *,
    tenant: str = "acme",
    data_source: str = "users",
    **secrets: str,
) -> None:
    """Add `connection` to `tenant` (no credential check: the tests point it at their own app)."""
    add_connection(
        open_store(env.settings.store_url),
        Vault.from_settings(env.settings),
        tenant_id=tenant,
        connection_id=connection,
        app=app,
        parameters=parameters,
        credentials={k: SecretStr(v) for k, v in secrets.items()},
        data_source=data_source,
    )


def import_full(connection: str, *, tenant: str = "acme", data_source: str = "users") -> ImportSummary:
    """The connection's full import, in this process, against the session's Prefect server."""
    return asyncio.run(full_import(ImportJob(tenant=tenant, connection=connection, data_source=data_source)))
