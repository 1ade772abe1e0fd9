"""An in-memory Pipedrive persons API (v1 and v2) on `SimulatorBase`, for tests, demos and benchmarks.

It answers the URLs `api-specs/pipedrive.md` describes (the facts and where each is served are listed in
`connectors/pipedrive/CONFORMANCE.md`), in Pipedrive's `success`/`data`/`additional_data` envelope:

    GET /api/v2/persons           cursor + limit (<= 500, more is a 400); `next_cursor: null` ends the list;
                                  `updated_since` (>=) / `updated_until` (<), `sort_by`, `sort_direction`,
                                  `ids`, `owner_id`, `org_id`, `filter_id`, `include_fields`, `custom_fields`
    GET /api/v2/persons/{id}      404 envelope for unknown and soft-deleted persons
    GET /api/v1/persons           start + limit (capped at 500), `more_items_in_collection` / `next_start`,
                                  `"data": null` when empty, `sort`, `filter_id`, `user_id`, `first_char`
    GET /api/v1/persons/{id}      soft-deleted persons too (`active_flag: false`), until they are purged
    GET /api/v1/persons/collection     cursor-paged v1 persons, admins only
    GET /api/v1/persons/{id}/changelog field changes, cursor-paged
    GET /api/v1/recents           person changes, deletions included, since `since_timestamp` (>=)
    /api/v1/webhooks              create, list, delete; v1 and v2 deliveries with HTTP Basic auth

Also under `/v1/...`. Auth: the `x-api-token` header, the older `api_token` query parameter, or an OAuth
`Bearer` token. Limits: a rolling 2-second burst window per token (API token or OAuth) and a daily token
budget answer 429 with `x-ratelimit-*` and Retry-After; a client that keeps ignoring 429s gets Cloudflare's
403 HTML page. Soft-deleted persons are purged 30 days after deletion. `expire_tokens` makes 31 days pass.

    python -m connectors.pipedrive.simulator --port 8420 --records 1000
"""

from collections.abc import Sequence

from connectors.pipedrive.simulator.app import DEFAULT_TOKEN, PipedriveSimulator
from connectors.pipedrive.simulator.webhooks import MAX_WEBHOOKS
from connectors.pipedrive.simulator.wire import CUSTOM_FIELD, OWNER
from connectors.simulation import serve, with_knobs

__all__ = ["CUSTOM_FIELD", "DEFAULT_TOKEN", "MAX_WEBHOOKS", "OWNER", "PipedriveSimulator", "main", "make_simulator"]

make_simulator = PipedriveSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(PipedriveSimulator, argv, "Serve a simulated Pipedrive persons API (v1 and v2)."))
