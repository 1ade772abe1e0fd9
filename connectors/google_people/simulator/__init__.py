"""An in-memory Google People API (the user's contacts), for tests, demos and benchmarks.

It answers, as `api-specs/google-people.md` describes them (the facts and where each is served are listed
in `connectors/google_people/CONFORMANCE.md`):

    GET /v1/people/me/connections   personFields (required), pageSize 1-1000 (unset/0: 100), pageToken,
                                    sortOrder, sources, requestSyncToken / syncToken; only `people/me`
    GET /v1/people/c<digits>        one person; 404 NOT_FOUND when unknown or deleted
    GET /v1/people:batchGet         up to 200 resourceNames, one PersonResponse each

with bearer auth (401 UNAUTHENTICATED; 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT without a contacts scope),
AIP-193 error bodies, 429 RESOURCE_EXHAUSTED without Retry-After, per-user and per-project read quotas per
minute and the fixed quota on first pages of full syncs, page tokens and sync tokens bound to the other
parameters (a mismatch is a 400), `nextSyncToken` only on the last page of a `requestSyncToken=true`
listing, deleted contacts only in sync responses (`metadata.deleted: true`), sync tokens that expire after
7 days (400 EXPIRED_SYNC_TOKEN, or the older 410), changes that may show up in sync responses only after a
delay, field items in no guaranteed order (exactly one `metadata.primary`), empty arrays omitted
(`connections` too), and a resource name sent with an encoded slash (`people%2Fc1`) answered with Google's
HTML 404, as the API does not route it. There are no webhooks. `/_sim/*` comes from `SimulatorBase`::

    python -m connectors.google_people.simulator --port 8420 --records 1000 --seed 7 --token ya29.X
"""

from collections.abc import Sequence

from connectors.google_people.simulator.app import DEFAULT_TOKEN, GooglePeopleSimulator
from connectors.simulation import serve, with_knobs

__all__ = ["DEFAULT_TOKEN", "GooglePeopleSimulator", "main", "make_simulator"]

make_simulator = GooglePeopleSimulator  # the contract suite's factory: make_simulator(records, seed, token=...)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator; `--help` lists the knobs."""
    serve(*with_knobs(GooglePeopleSimulator, argv, "Serve a simulated Google People API (the user's contacts)."))
