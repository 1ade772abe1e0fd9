"""Run a flow in this process, on the Prefect server `inlet up` runs (if any): the one place in `inlet/` that
imports `flows/`. The CLI and the demo call it; deployments run the same flows on workers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Literal, NoReturn

from inlet.local.environment import apply_prefect_env, require_prefect_server
from inlet.settings import Settings
from inlet.store import Vault, load_connection, open_store

__all__ = ["FlowName", "flush_prefect", "format_summary", "run_flow", "serve_receiver"]

FlowName = Literal[
    "full-import", "poll-changes", "incremental-import", "deliver-outbox", "remap", "retry-quarantine", "push-outbox"
]


def run_flow(
    settings: Settings,
    name: FlowName,
    tenant: str,
    connection: str,
    *args: Any,
    use_local_server: bool | None = None,
    **options: Any,
) -> Any:
    """Check the connection exists, then run flow `name` for it here and return what the flow returns."""
    load_connection(open_store(settings.store_url), Vault.from_settings(settings), tenant, connection)
    apply_prefect_env(settings, use_local_server=use_local_server)
    require_prefect_server(settings)
    call = _flow_call(name, tenant, connection, *args, **options)
    try:
        return asyncio.run(call())
    finally:
        flush_prefect()


def _flow_call(
    name: FlowName, tenant: str, connection: str, *args: Any, **options: Any
) -> Callable[[], Coroutine[Any, Any, Any]]:
    """The flow's coroutine, imported only now: Prefect's settings must be in place before `flows` loads."""
    if name == "full-import":
        from flows.full_import import full_import
        from flows.runtime import ImportJob

        return lambda: full_import(ImportJob(tenant=tenant, connection=connection, **options))
    if name == "poll-changes":
        from flows.poll_changes import poll_changes

        return lambda: poll_changes(tenant, connection)
    if name == "incremental-import":
        from flows.incremental_import import incremental_import

        return lambda: incremental_import(tenant, connection)
    if name == "deliver-outbox":
        from flows.deliver_outbox import deliver_outbox

        return lambda: deliver_outbox(tenant, connection)
    if name == "push-outbox":
        from flows.push_outbox import push_outbox

        return lambda: push_outbox(tenant, connection)
    from flows import remap

    flow = remap.remap if name == "remap" else remap.retry_quarantine
    return lambda: flow(tenant, connection, *args)


def flush_prefect() -> None:
    """Ship buffered run logs and events before this process (or the server it started) goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    EventsWorker.drain_all()


def format_summary(summary: Any) -> list[str]:
    """A run summary, one aligned `name: value` line per figure."""
    return [f"  {name:>16}: {value}" for name, value in summary.model_dump().items()]


def serve_receiver(
    settings: Settings, host: str, port: int, build_app: Callable[[Callable[[str, str], None]], Any] | None = None
) -> None:
    """Serve webhooks until SIGTERM or Ctrl-C, then send the change events still waiting in the debouncer.

    `build_app(notify)` makes the ASGI app (the receiver with the API and pages, see `inlet.api`); default: the
    receiver alone."""
    import uvicorn

    from inlet.receiver import create_receiver

    engine = open_store(settings.store_url)
    vault = Vault.from_settings(settings)
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # receiver logs belong to no run
    apply_prefect_env(settings)
    # after apply_prefect_env: Prefect reads its settings on import
    from flows.events import ChangeNotifier, emit_changed

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("inlet").setLevel(logging.INFO)
    emit: Callable[[str, str], None] = emit_changed
    if "PREFECT_API_URL" not in os.environ:  # never a temporary server: it would take the events to nobody
        logging.getLogger("inlet.receiver").warning(
            "no Prefect server answers on port %d and PREFECT_API_URL is unset: webhooks are kept in each "
            "connection's inbox and applied by its next scheduled poll once `inlet up` runs (or set PREFECT_API_URL)",
            settings.prefect_port,
        )
        emit = _keep_in_inbox
    # uvicorn re-raises the signal it stopped on; exiting through SystemExit runs the `finally` below.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_quietly)
    notifier = ChangeNotifier(window=settings.notify_window, emit=emit)
    logging.getLogger("inlet.receiver").info(
        "receiving webhooks at http://%s:%d/webhooks/{app}/{tenant}/{connection}", host, port
    )
    try:
        receipts = settings.webhook_receipt_seconds
        app = (
            build_app(notifier.notify)
            if build_app
            else create_receiver(engine, vault, notifier.notify, receipt_seconds=receipts)
        )
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        notifier.close()
        flush_prefect()


def _keep_in_inbox(tenant: str, connection: str) -> None:
    """No Prefect server to tell: the change stays in the inbox, which the connection's next poll applies."""


def _exit_quietly(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(0)
