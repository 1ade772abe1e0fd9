"""The Prefect settings inlet runs with on the embedded default, as environment variables.

They must be in place before Prefect is imported, so the CLI applies them first.
"""

from __future__ import annotations

import os

import httpx

from inlet.errors import Unavailable
from inlet.settings import Settings

__all__ = ["apply_prefect_env", "local_api_url", "prefect_env", "require_prefect_server", "server_is_up"]


def local_api_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.prefect_port}/api"


def prefect_env(settings: Settings) -> dict[str, str]:
    """Settings for Prefect: home inside .inlet, 127.0.0.1 only, no telemetry, connector logs in run logs."""
    return {
        "PREFECT_HOME": str(settings.prefect_home.resolve()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
        "PREFECT_LOGGING_EXTRA_LOGGERS": "connectors,mappings,inlet",
        "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        # a busy SQLite server answers 503 ("database is locked"); 5 retries lost 2 runs in 1,000 (bench/scale.py)
        "PREFECT_CLIENT_MAX_RETRIES": "10",
        # leases on disk under PREFECT_HOME: a slot held when the server died lapses after its restart (in memory,
        # the lease vanished and the slot stayed taken for good); several API replicas need prefect-redis's storage
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
    }


def server_is_up(settings: Settings) -> bool:
    try:
        # A refused connection answers at once; a loaded server (SQLite busy) may take seconds to say it is up.
        return httpx.get(local_api_url(settings) + "/health", timeout=10.0).status_code == 200
    except httpx.HTTPError:
        return False


def apply_prefect_env(settings: Settings, *, use_local_server: bool | None = None) -> None:
    """Set the Prefect environment unless the user set a value; point at the local server when it runs."""
    for name, value in prefect_env(settings).items():
        os.environ.setdefault(name, value)
    if "PREFECT_API_URL" in os.environ:
        return
    if use_local_server if use_local_server is not None else server_is_up(settings):
        os.environ["PREFECT_API_URL"] = local_api_url(settings)


def require_prefect_server(settings: Settings) -> None:
    """Commands that run flows use the running stack's Prefect server (or PREFECT_API_URL's, or the Prefect
    profile's); with none, they say so. They never start a temporary server of their own, which would write
    runs nobody sees into a database of its own."""
    if os.environ.get("PREFECT_API_URL"):
        return
    from prefect.settings import get_current_settings  # after apply_prefect_env: Prefect reads them on import

    if get_current_settings().api.url:
        return
    raise Unavailable(
        f"no Prefect server answers on 127.0.0.1:{settings.prefect_port} (INLET_PREFECT_PORT) and PREFECT_API_URL "
        "is unset: start the stack with `inlet up` (or `make up`) in another terminal, or set PREFECT_API_URL"
    )
