"""Many simulated accounts in one process: each connection's simulator mounted under `/<connection id>`.

    python -m tests.support.farm --port 8600 --tenants 50 --records 30

serves, for tenants `t00`..`t49`, a HubSpot portal at `/t00-hubspot` and a Pipedrive company at
`/t00-pipedrive`, each seeded with its own connection id, so no two accounts hold the same people. Every
mounted simulator keeps its whole API, OAuth and `/_sim/*` control endpoints under its prefix.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.hubspot.simulator import make_simulator as make_hubspot
from connectors.pipedrive.simulator import make_simulator as make_pipedrive
from connectors.simulation import SimulatorBase

__all__ = ["APPS", "FarmConnection", "farm_connections", "main"]

APPS = {"hubspot": make_hubspot, "pipedrive": make_pipedrive}
WEBHOOK_SECRETS = {"hubspot": "hs-farm-client-secret", "pipedrive": "farm-hook:farm-hook-password"}


@dataclass(frozen=True)
class FarmConnection:
    """One account of the farm and the inlet connection that reaches it."""

    tenant: str
    connection: str
    app: str

    @property
    def token(self) -> str:
        return f"farm-token-{self.connection}"

    @property
    def webhook_secret(self) -> str:
        return WEBHOOK_SECRETS[self.app]


def farm_connections(tenants: int) -> list[FarmConnection]:
    return [FarmConnection(f"t{n:02d}", f"t{n:02d}-{app}", app) for n in range(tenants) for app in APPS]


def build_farm(tenants: int, records: int) -> tuple[Starlette, dict[str, SimulatorBase]]:
    simulators = {
        c.connection: APPS[c.app](records=records, seed=c.connection, token=c.token) for c in farm_connections(tenants)
    }
    routes = [Mount(f"/{name}", app=sim.app) for name, sim in simulators.items()]
    return Starlette(routes=routes), simulators


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve one simulated account per farm connection.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--records", type=int, default=30)
    args = parser.parse_args(argv)
    app, _ = build_farm(args.tenants, args.records)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
