"""An in-memory Zendesk Support users API (`api-specs/zendesk.md`), for tests, demos and benchmarks.

It serves, with or without the `.json` suffix (the facts and where each is served are listed in
`connectors/zendesk/CONFORMANCE.md`):

    GET /api/v2/users                        cursor (`page[size]` <= 100) or offset (<= 100 pages) pagination;
                                             filters `role`/`role[]`, `permission_set`, `external_id`
    GET /api/v2/users/{id}, /users/show_many {"user": {...}} / {"users": [...]}
    GET /api/v2/deleted_users[/{id}]         soft- and permanently deleted users
    GET /api/v2/incremental/users/cursor     cursor export: start_time, then cursor; end_of_stream
    GET /api/v2/incremental/users            time-based export: start_time/end_time, boundary duplicates
    GET /api/v2/incremental/users/sample     the same format, 50 users, 10 requests per 20 minutes
    /api/v2/webhooks...                      the Webhooks API; user events signed with HMAC-SHA256

API-token Basic auth (`<email>/token:<token>`) or a Bearer token, the incremental exports for admins only
at 10 requests a minute (sideloads with `include=`), an account-wide per-minute limit with `X-Rate-Limit*`
headers, and plain-text 429s with Retry-After.

    python -m connectors.zendesk.simulator --port 8430 --records 1000
"""

from collections.abc import Sequence

from connectors.simulation import serve, with_knobs
from connectors.zendesk.simulator.app import ADMIN_EMAIL, DEFAULT_TOKEN, ZendeskSimulator
from connectors.zendesk.simulator.webhooks import TEST_SECRET, sign
from connectors.zendesk.simulator.wire import PERMISSION_SET

__all__ = [
    "ADMIN_EMAIL",
    "DEFAULT_TOKEN",
    "PERMISSION_SET",
    "TEST_SECRET",
    "ZendeskSimulator",
    "main",
    "make_simulator",
    "sign",
]

make_simulator = ZendeskSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(ZendeskSimulator, argv, "Serve a simulated Zendesk Support users API."))
