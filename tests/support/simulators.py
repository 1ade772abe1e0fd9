"""The SaaS simulators as real processes, connected as the tenant's accounts, and their state as they keep it.

with running_simulator(env, "salesforce", tmp_path, records=3) as sim:
    sim.connection, sim.data_source                  # connected as acme-salesforce
    sim.update_externally(external_id, last="King")  # a person edits the record in the app
    sim.state()                                      # email -> full name of every live record
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from inlet.local import free_port, start_process, stop_process
from tests.conftest import InletEnv
from tests.support.connections import connect

__all__ = ["SAAS_APPS", "RunningSimulator", "running_simulator"]

# The data source each app's writable collection serves (Graph writes the mailbox's contacts, not users).
SAAS_APPS = {
    "hubspot": "users",
    "salesforce": "users",
    "zendesk": "users",
    "msgraph": "contacts",
    "google_people": "users",
    "pipedrive": "users",
}
_TOKEN = "push-round-trip-token-4d1e"
_SECOND_SET = {"msgraph": "contacts"}  # apps whose writable records are a set of their own in the simulator


@dataclass
class RunningSimulator:
    """One simulator process and the inlet connection (`acme-push-<app>`) that reaches it (`inlet_env` has its
    own `acme-hubspot`)."""

    app: str
    url: str
    process: Any
    env: InletEnv

    @property
    def connection(self) -> str:
        return f"acme-push-{self.app}"

    @property
    def data_source(self) -> str:
        return SAAS_APPS[self.app]

    def connect(self, base_url: str) -> None:
        """Connect the account as `acme-push-<app>`, reached at `base_url` (the simulator, or a proxy before it)."""
        make = importlib.import_module(f"connectors.{self.app}.simulator").make_simulator
        parameters, secrets = make(records=0, seed=0, token=_TOKEN).connection(base_url)
        credentials = {k: v.get_secret_value() for k, v in secrets.items()}
        connect(self.env, self.connection, self.app, parameters, data_source=self.data_source, **credentials)

    def emails(self) -> Counter[str]:
        """How many live records hold each email (a duplicate shows as 2)."""
        return Counter(r["email"] for r in self.records() if not r["deleted"])

    def control(self, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None) -> Any:
        url = f"{self.url}/_sim/{path}"
        if body is None:
            response = httpx.get(url, params=params, timeout=10)
        else:
            response = httpx.post(url, json=body, params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def records(self) -> list[dict[str, Any]]:
        """Every record the simulator keeps for the written collection (deleted ones too), as `/_sim` shows it."""
        collection = _SECOND_SET.get(self.app)
        return list(self.control("records", params={"collection": collection} if collection else None))

    def record(self, external_id: str) -> dict[str, Any]:
        return next(r for r in self.records() if r["id"] == external_id)

    def state(self) -> dict[str, str]:
        """Email -> full name of every live record."""
        return {r["email"]: f"{r['first']} {r['last']}".strip() for r in self.records() if not r["deleted"]}

    def update_externally(self, external_id: str, **fields: str) -> None:
        """A change made in the app itself, not through inlet (`first`, `last`, `email`, ...)."""
        if self.app == "msgraph":  # the mailbox's contacts change through the API (an Outlook client)
            body = {{"first": "givenName", "last": "surname"}[k]: v for k, v in fields.items()}
            response = httpx.patch(
                f"{self.url}/v1.0/me/contacts/{external_id}",
                json=body,
                headers={"Authorization": f"Bearer {_TOKEN}"},
                timeout=10,
            )
            response.raise_for_status()
            return
        self.control("mutate", {"update": {external_id: fields}})

    def inject(self, **faults: Any) -> None:
        self.control("faults", faults)


@contextmanager
def running_simulator(
    env: InletEnv, app: str, folder: Path, *, records: int, connected: bool = True
) -> Iterator[RunningSimulator]:
    """Start the app's simulator with `records` seeded people and connect it to tenant acme (not `connected`:
    the test calls `connect` itself, with a proxy's URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", f"connectors.{app}.simulator", "--port", str(port)]
    command += ["--records", str(records), "--token", _TOKEN, "--deliver-every", "0"]
    if app == "msgraph":
        command += ["--contacts", str(records)]
    process = start_process(command, url + "/_sim/stats", log_path=folder / f"{app}.log")
    try:
        sim = RunningSimulator(app, url, process, env)
        if connected:
            sim.connect(url)
        yield sim
    finally:
        stop_process(process)
