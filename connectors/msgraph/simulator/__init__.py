"""An in-memory Microsoft Graph v1.0 users API on `SimulatorBase`, for tests, demos and benchmarks.

It serves, as `api-specs/msgraph.md` describes them (the facts and where each is served are listed in
`connectors/msgraph/CONFORMANCE.md`):

    GET /v1.0/users                      `$top` 1-999 (default 100), `$select`, `$filter`, `$search`, `$orderby`,
                                         `$count`, `$expand=manager`; absolute `@odata.nextLink`s, no `$skip`
    GET /v1.0/users/{id | userPrincipalName}
    GET /v1.0/users/delta                rounds paged with `$skiptoken` (pages may be empty), ended by an
                                         `@odata.deltaLink`; `@removed` `changed` (soft delete) or `deleted`;
                                         `$select` tracks only those properties; `$deltatoken=latest`;
                                         `Prefer: return=minimal`; tokens expire after 7 days
    GET /v1.0/directory/deletedItems/microsoft.graph.user
    /v1.0/subscriptions                  change notifications with the validation handshake, renewal,
                                         deletion and lifecycle notifications
    POST /_sim/lifecycle                 {"event": "missed", "subscription": id?, "lose_notifications": true?}:
                                         queue a lifecycle notification (and drop waiting change notifications)

with bearer auth (`InvalidAuthenticationToken` 401s; app permissions `User.Read.All` or
`Directory.Read.All`), advanced queries behind `ConsistencyLevel: eventual`, and the identity service's
resource-unit bucket with `x-ms-resource-unit`, `x-ms-throttle-*` headers and 429 `TooManyRequests` +
`Retry-After`. Users are never purged by themselves: `delete` soft-deletes, `purge` deletes permanently.

    python -m connectors.msgraph.simulator --port 8420 --records 1000 --seed 7 --token X
"""

from collections.abc import Sequence

from connectors.msgraph.simulator.app import DEFAULT_TOKEN, GraphSimulator
from connectors.msgraph.simulator.wire import TENANT_ID
from connectors.simulation import serve, with_knobs

__all__ = ["DEFAULT_TOKEN", "TENANT_ID", "GraphSimulator", "main", "make_simulator"]

make_simulator = GraphSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(GraphSimulator, argv, "Serve a simulated Microsoft Graph v1.0 users API (Entra ID)."))
