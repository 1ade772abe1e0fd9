"""An in-memory HubSpot CRM v3 contacts API on `SimulatorBase`, for tests, demos and benchmarks.

It serves, as `api-specs/hubspot.md` describes them (the facts and where each is served are listed in
`connectors/hubspot/CONFORMANCE.md`), under `/crm/v3/objects/contacts` and the date-versioned
`/crm/objects/<yyyy-mm>/contacts`:

    GET  .../contacts               `after` cursor, `limit` 10/100, `properties`, `propertiesWithHistory`,
                                    `associations`, `archived=true` (only archived); no `paging` at the end
    GET  .../contacts/{id}          also by `idProperty=email`; 404 envelope for unknown or archived ids
    POST .../contacts/batch/read    up to 100 inputs; 207 with `errors` for ids not found
    POST .../contacts/search        filter groups, one sort, `limit` <= 200, `total`, the 10,000-result cap,
                                    an optional index lag and per-second limit

with bearer auth (hapikey refused, OAuth tokens need `crm.objects.contacts.read`), rate-limit headers and
`policyName` 429 bodies without `Retry-After` (10-second window, daily limit at the account's midnight),
archived contacts restorable for 90 days, and app webhooks: signed (v1/v2 and v3) JSON arrays of events
for creations, property changes, deletions, restores, GDPR deletions and merges, retried as HubSpot does.

The `expire_tokens` fault has no HubSpot counterpart and changes nothing here: HubSpot hands out no
incremental token, the client keeps a `lastmodifieddate` watermark and search accepts any value of it.

    python -m connectors.hubspot.simulator --port 8410 --records 1000 --seed 7 --token X [--rate-limit 100]
"""

from collections.abc import Sequence

from connectors.hubspot.simulator.app import DEFAULT_TOKEN, HubSpotSimulator
from connectors.hubspot.simulator.webhooks import PORTAL_ID, signature_headers
from connectors.hubspot.simulator.wire import DEFAULT_PROPERTIES
from connectors.simulation import serve, with_knobs

__all__ = [
    "DEFAULT_PROPERTIES",
    "DEFAULT_TOKEN",
    "PORTAL_ID",
    "HubSpotSimulator",
    "main",
    "make_simulator",
    "signature_headers",
]

make_simulator = HubSpotSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(HubSpotSimulator, argv, "Serve a simulated HubSpot CRM v3 contacts API."))
