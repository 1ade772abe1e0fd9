"""`inlet demo` and `inlet up`: the embedded default with a demo tenant, on this machine only."""

from __future__ import annotations

import json
import os

import httpx
import typer
from pydantic import SecretStr

from inlet.errors import InletError
from inlet.local import DEMO_TOKEN, Stack, format_summary, run_flow, start_stack, wait_for_signal
from inlet.service import initialise
from inlet.settings import EgressSettings, Settings, get_settings
from inlet.store import Vault

__all__ = ["DEMO_CONNECTION", "DEMO_TENANT", "run_demo", "run_up"]

DEMO_TENANT = "demo"
DEMO_CONNECTION = "demo-hubspot"
DEMO_WEBHOOK_SECRET = "hs-demo-client-secret"  # the demo simulator's app secret; not a real account's


def ensure_demo_tenant(settings: Settings, simulator_url: str) -> None:
    """The demo tenant with a HubSpot connection pointing at the local simulator."""
    from inlet.store import add_connection, add_tenant, list_tenants, open_store

    engine = open_store(settings.store_url)
    if DEMO_TENANT not in {t.id for t in list_tenants(engine)}:
        add_tenant(engine, DEMO_TENANT, "Demo tenant")
    add_connection(
        engine,
        Vault.from_settings(settings),
        tenant_id=DEMO_TENANT,
        connection_id=DEMO_CONNECTION,
        app="hubspot",
        parameters={"base_url": simulator_url},
        credentials={"token": SecretStr(DEMO_TOKEN), "webhook_secret": SecretStr(DEMO_WEBHOOK_SECRET)},
        replace=True,
    )


def _allow_simulator(settings: Settings) -> Settings:
    """The demo's HubSpot listens on 127.0.0.1: allow exactly its address and port through the egress guard,
    for this process and the ones it starts, as an operator would with INLET_EGRESS__ALLOW_HOSTS."""
    entry = f"127.0.0.1:{settings.simulator_port}"
    hosts = list(dict.fromkeys([*settings.egress.allow_hosts, entry]))
    os.environ["INLET_EGRESS__ALLOW_HOSTS"] = json.dumps(hosts)
    get_settings.cache_clear()
    return settings.model_copy(update={"egress": EgressSettings(allow_hosts=hosts)})


def _start(settings: Settings, records: int, serve_flows: bool) -> Stack:
    settings = _allow_simulator(settings)
    for line in initialise(settings):
        typer.echo(line)
    typer.echo("starting the Prefect server, the demo HubSpot and the demo app on 127.0.0.1 ...")
    stack = start_stack(settings, simulator_records=records, serve_flows=serve_flows)
    ensure_demo_tenant(settings, stack.urls["simulator"])
    return stack


def run_demo(settings: Settings, *, records: int, wait: bool) -> int:
    """Full import of the demo tenant's HubSpot into the demo app; 0 when the app holds every record."""
    stack = _start(settings, records, serve_flows=wait)
    try:
        typer.echo(f"full import of {DEMO_TENANT}/{DEMO_CONNECTION} ({records} users) ...")
        summary = run_flow(settings, "full-import", DEMO_TENANT, DEMO_CONNECTION, use_local_server=True)
        for line in format_summary(summary):
            typer.echo(line)
        stats = httpx.get(stack.urls["demo-app"] + "/stats", timeout=10).json()
        source = httpx.get(stack.urls["simulator"] + "/_sim/stats", timeout=10).json()
        typer.echo(f"the demo app holds {stats['records']} users; the demo HubSpot has {source['records']}")
        _print_urls(stack, summary.flow_run_id)
        if stats["records"] != source["records"]:
            raise InletError("the demo app does not hold every record of the source")
        if wait:
            typer.echo("the stack stays up; press Ctrl-C to stop it")
            wait_for_signal()
        return 0
    finally:
        stack.stop()


def run_up(settings: Settings, *, records: int) -> None:
    """Start everything and keep it up until Ctrl-C or SIGTERM."""
    stack = _start(settings, records, serve_flows=True)
    try:
        _print_urls(stack, None)
        typer.echo(
            f"run a full import from the UI (deployment full-import/full-import, tenant {DEMO_TENANT}, "
            f"connection {DEMO_CONNECTION}) or `inlet import full -t {DEMO_TENANT} -c {DEMO_CONNECTION}`"
        )
        typer.echo("press Ctrl-C to stop")
        wait_for_signal()
    finally:
        stack.stop()


def _print_urls(stack: Stack, flow_run_id: str | None) -> None:
    prefect = stack.urls["prefect"]
    typer.echo(f"  Prefect UI:     {prefect}")
    if flow_run_id:
        typer.echo(f"  this run:       {prefect}/runs/flow-run/{flow_run_id}")
    typer.echo(f"  demo app:       {stack.urls['demo-app']}/")
    typer.echo(f"  demo HubSpot:   {stack.urls['simulator']}/_sim/stats")
    if "task-worker" in stack.urls:
        typer.echo(f"  task worker:    {stack.urls['task-worker']}/status (applies webhook changes at once)")
    if "receiver" in stack.urls:
        typer.echo(f"  webhooks:       {stack.urls['receiver']}/webhooks/{{app}}/{{tenant}}/{{connection}}")
