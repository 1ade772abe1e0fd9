"""An in-memory Salesforce REST API (Contact and User), for tests, demos and benchmarks.

It serves, as `api-specs/salesforce.md` describes them (the facts and where each is served are listed in
`connectors/salesforce/CONFORMANCE.md`):

    GET /services/data/                           the API versions (no session, no limit)
    GET /services/data/vXX.X/query?q=, queryAll   SOQL with query locators (`nextRecordsUrl` ending
                                                  `-<offset>`, `done`, `totalSize`), batches of 200-2000
    GET .../sobjects/<Object>/<Id>                one row, `fields=`; 404 NOT_FOUND / ENTITY_IS_DELETED
    GET .../sobjects/<Object>/updated/, deleted/  the replication windows (30 and 15 days)
    GET .../limits                                DailyApiRequests

with error bodies as JSON arrays, `INVALID_SESSION_ID` 401s, ids of 18 characters with their case
checksum, `2024-05-01T12:00:03.000+0000` datetimes, throttling as 403 `REQUEST_LIMIT_EXCEEDED` without
Retry-After (the rolling daily allocation, concurrent long-running requests), `Sforce-Limit-Info` on every
answer, and OAuth web-server, refresh, client-credentials and JWT-bearer flows. Deleted contacts leave
`query` (they stay in `queryAll` with `IsDeleted: true` until purged); users are deactivated, never deleted.

The SOQL understood: `SELECT f, Account.Name FROM Contact|User [WHERE ... AND/OR/NOT, IN, LIKE]
[ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`.

    python -m connectors.salesforce.simulator --port 8420 --records 1000
"""

from collections.abc import Sequence

from connectors.salesforce.simulator.app import DEFAULT_TOKEN, SalesforceSimulator
from connectors.simulation import serve, with_knobs

__all__ = ["DEFAULT_TOKEN", "SalesforceSimulator", "main", "make_simulator"]

make_simulator = SalesforceSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(SalesforceSimulator, argv, "Serve a simulated Salesforce REST API (Contact and User)."))
