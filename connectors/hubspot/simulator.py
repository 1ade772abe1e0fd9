"""An in-memory HubSpot CRM v3 contacts API, for tests, demos and benchmarks.

It serves `GET /crm/v3/objects/contacts` and `GET /crm/v3/objects/contacts/{id}` as
`api-specs/hubspot.md` describes them: bearer auth, an opaque `after` cursor, no `paging` key on the
last page, archived-only listings, rate-limit headers and `policyName` 429 bodies without
`Retry-After`. Unauthenticated `/_sim/*` endpoints mutate data and inject faults when it runs out of
process::

    python -m connectors.hubspot.simulator --port 8410 --records 1000 --seed 7 --token X
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import logging
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["DEFAULT_PROPERTIES", "DEFAULT_TOKEN", "MAX_LIMIT", "HubSpotSimulator", "main"]

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "pat-na1-demo-token"
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
MAX_LIMIT = 100
_PROPERTIES = frozenset(DEFAULT_PROPERTIES) | {"phone", "company", "jobtitle"}
_NOT_FOUND = "Object not found.  objectId are usually numeric."
_BAD_CREDENTIALS = "Authentication credentials not found or invalid. Send a private app or OAuth 2.0 token."
_NO_API_KEYS = "API keys (hapikey) were retired; send a private app token as a Bearer token."
_TRUNCATED = b'{"results": [{"id": "'  # what a proxy cutting the connection mid-body leaves behind
_FIRST_ID = 10_000_000_000
_ID_STEP = 7
_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z; seeded contacts are created 10 s apart from here
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1)  # naive, so isoformat() has no offset and we can append "Z"
_FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Katherine")
_LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Ng")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")
_TITLES = ("Engineer", "Analyst", "Manager", "Director", "Designer", "Consultant", "Founder", "Researcher")


class _Invalid(Exception):
    """A request the real API would answer with 400 VALIDATION_ERROR."""


@dataclass
class _Faults:
    status_429: int = 0
    status_500: int = 0
    malformed: int = 0
    slow_seconds: float = 0.0


class HubSpotSimulator:
    """Seeded contacts behind a Starlette app (`.app`); the same seed gives the same contacts.

    Contact ids are ascending strings of 11-digit integers; every property value is a string or null.
    The Python methods (`create`, `update`, `delete`, `inject`, `stats`, `reset`) and the `/_sim/*`
    endpoints do the same things.
    """

    def __init__(
        self,
        records: int = 100,
        seed: int | str = 0,
        *,
        token: str = DEFAULT_TOKEN,
        rate_limit: int = 190,
        rate_interval_ms: int = 10_000,
        daily_limit: int = 1_000_000,
        cap_oversized_limit: bool = False,
    ) -> None:
        self.token, self.rate_limit, self.rate_interval_ms = token, rate_limit, rate_interval_ms
        self.daily_limit, self.cap_oversized_limit = daily_limit, cap_oversized_limit
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._props: dict[int, dict[str, str | None]] = {}
        self._by_email: dict[str, int] = {}
        self._live: list[int] = []
        self._archived: list[int] = []
        self._archived_at: dict[int, str] = {}
        self._serial = self._clock_ms = 0
        for i in range(records):
            created = _EPOCH_MS + i * 10_000 + int(self._rng.random() * 10_000)
            self._add(created, created + int(self._rng.random() * 90 * _DAY_MS))
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/crm/v3/objects/contacts", self._list_endpoint, methods=["GET"]),
                Route("/crm/v3/objects/contacts/{contact_id}", self._get_endpoint, methods=["GET"]),
                Route("/_sim/mutate", self._mutate_endpoint, methods=["POST"]),
                Route("/_sim/faults", self._faults_endpoint, methods=["POST"]),
                Route("/_sim/stats", self._stats_endpoint, methods=["GET"]),
                Route("/_sim/reset", self._reset_endpoint, methods=["POST"]),
            ],
            exception_handlers={_Invalid: _invalid_handler},
        )

    # -- Python control API ------------------------------------------------------------------------

    def create(self, n: int) -> list[str]:
        """Add `n` live contacts created now; return their ids."""
        with self._lock:
            return [str(self._add(t, t)) for t in (self._tick() for _ in range(n))]

    def update(self, ids: int | Sequence[str]) -> list[str]:
        """Change `jobtitle` and bump `lastmodifieddate` of the given live ids (or of `ids` random ones)."""
        with self._lock:
            chosen = self._select(ids)
            for oid in chosen:
                props = self._props[oid]
                props["jobtitle"] = self._rng.choice([t for t in _TITLES if t != props["jobtitle"]])
                props["lastmodifieddate"] = _iso(self._tick())
        logger.debug("updated %d simulated contacts", len(chosen))
        return [str(oid) for oid in chosen]

    def delete(self, ids: int | Sequence[str]) -> list[str]:
        """Archive the given live ids (or `ids` random ones) like `DELETE .../contacts/{id}` does."""
        with self._lock:
            chosen = self._select(ids)
            for oid in chosen:
                del self._live[bisect.bisect_left(self._live, oid)]
                bisect.insort(self._archived, oid)
                self._archived_at[oid] = _iso(self._tick())
        logger.debug("archived %d simulated contacts", len(chosen))
        return [str(oid) for oid in chosen]

    def inject(
        self,
        *,
        status_429: int = 0,
        status_500: int = 0,
        malformed: int = 0,
        slow_seconds: float | None = None,
    ) -> None:
        """Make the next list/get requests fail: counts add up, 429s first, then 500s, then bad bodies.

        `slow_seconds` (replacing any earlier value) delays every served page until `reset()`.
        """
        with self._lock:
            self._faults.status_429 += status_429
            self._faults.status_500 += status_500
            self._faults.malformed += malformed
            if slow_seconds is not None:
                self._faults.slow_seconds = slow_seconds

    def stats(self) -> dict[str, int]:
        """Requests received on the CRM endpoints (errors included) and live/archived record counts."""
        with self._lock:
            return {**self._counts, "records": len(self._live), "archived": len(self._archived)}

    def reset(self) -> None:
        """Clear faults, request counters and rate-limit usage; the data stays."""
        with self._lock:
            self._faults = _Faults()
            self._counts = {"requests": 0, "list_requests": 0, "get_requests": 0}
            self._window: collections.deque[float] = collections.deque()
            self._day, self._daily_used = datetime.now(UTC).date(), 0

    def ids(self, *, archived: bool = False) -> list[str]:
        """All live (or archived) ids in ascending order."""
        with self._lock:
            return [str(oid) for oid in (self._archived if archived else self._live)]

    # -- storage -----------------------------------------------------------------------------------

    def _add(self, created_ms: int, modified_ms: int) -> int:
        draw, serial = self._rng.random, self._serial  # random() is several times cheaper than choice()
        oid = _FIRST_ID + serial * _ID_STEP + int(draw() * _ID_STEP)
        first, last = _FIRST[int(draw() * len(_FIRST))], _LAST[int(draw() * len(_LAST))]
        email = f"{first}.{last}{serial}@example.org".lower()
        self._props[oid] = {
            "createdate": _iso(created_ms),
            "email": email,
            "firstname": first,
            "lastname": last,
            "phone": None if draw() < 0.25 else f"+1 555 {int(draw() * 10_000_000):07d}",
            "company": _COMPANIES[int(draw() * len(_COMPANIES))],
            "jobtitle": _TITLES[int(draw() * len(_TITLES))],
            "hs_object_id": str(oid),
            "lastmodifieddate": _iso(modified_ms),
        }
        self._by_email[email] = oid
        self._live.append(oid)
        self._serial, self._clock_ms = serial + 1, max(self._clock_ms, modified_ms)
        return oid

    def _tick(self) -> int:
        """Now in epoch ms, strictly later than every timestamp handed out before."""
        self._clock_ms = max(int(time.time() * 1000), self._clock_ms + 1)
        return self._clock_ms

    def _select(self, ids: int | Sequence[str]) -> list[int]:
        if isinstance(ids, int):
            return sorted(self._rng.sample(self._live, min(ids, len(self._live))))
        wanted = {int(i) for i in ([ids] if isinstance(ids, str) else ids) if _is_id(str(i))}
        return sorted(oid for oid in wanted if oid in self._props and oid not in self._archived_at)

    def _render(self, oid: int, names: Sequence[str]) -> dict[str, Any]:
        props = self._props[oid]
        record: dict[str, Any] = {
            "id": str(oid),
            "properties": {name: props[name] for name in names},
            "createdAt": props["createdate"],
            "updatedAt": props["lastmodifieddate"],
            "archived": oid in self._archived_at,
        }
        if record["archived"]:
            record["archivedAt"] = self._archived_at[oid]
        return record

    # -- CRM endpoints -----------------------------------------------------------------------------

    async def _list_endpoint(self, request: Request) -> Response:
        if (early := await self._admit(request, "list_requests")) is not None:
            return early
        params = request.query_params
        limit, names, archived = self._page_size(params.get("limit")), _names(params), _archived(params)
        with self._lock:
            ids = self._archived if archived else self._live
            start = bisect.bisect_left(ids, _cursor(params.get("after")))
            page = ids[start : start + limit]
            body: dict[str, Any] = {"results": [self._render(oid, names) for oid in page]}
            if start + limit < len(ids):
                after = str(ids[start + limit])
                link = str(request.url.include_query_params(after=after))
                body["paging"] = {"next": {"after": after, "link": link}}
            return _json(body, headers=self._rate_headers())

    async def _get_endpoint(self, request: Request) -> Response:
        if (early := await self._admit(request, "get_requests")) is not None:
            return early
        raw_id: str = request.path_params["contact_id"]
        params = request.query_params
        with self._lock:
            oid = self._resolve(raw_id, params.get("idProperty"))
            if oid is None or (oid in self._archived_at) != _archived(params):
                return _error(404, _NOT_FOUND, "OBJECT_NOT_FOUND", context={"id": [raw_id]})
            return _json(self._render(oid, _names(params)), headers=self._rate_headers())

    async def _admit(self, request: Request, kind: str) -> Response | None:
        """Count the request, then answer it early for bad auth, an injected fault or a rate limit."""
        with self._lock:
            self._counts["requests"] += 1
            self._counts[kind] += 1
            early = self._authenticate(request) or self._take_fault() or self._consume_rate()
            delay = self._faults.slow_seconds
        if early is None and delay > 0:
            await asyncio.sleep(delay)
        return early

    def _authenticate(self, request: Request) -> Response | None:
        if "hapikey" in request.query_params:
            return _error(401, _NO_API_KEYS, "INVALID_AUTHENTICATION")
        if request.headers.get("authorization", "") != f"Bearer {self.token}":
            return _error(401, _BAD_CREDENTIALS, "INVALID_AUTHENTICATION")
        return None

    def _take_fault(self) -> Response | None:
        faults = self._faults
        if faults.status_429 > 0:
            faults.status_429 -= 1
            return _rate_limited("TEN_SECONDLY_ROLLING", self._rate_headers())
        if faults.status_500 > 0:
            faults.status_500 -= 1
            return _error(500, "internal error", "INTERNAL_ERROR")
        if faults.malformed > 0:
            faults.malformed -= 1
            return Response(_TRUNCATED, media_type="application/json", headers=self._rate_headers())
        return None

    def _consume_rate(self) -> Response | None:
        now, today = time.monotonic(), datetime.now(UTC).date()
        if today != self._day:
            self._day, self._daily_used = today, 0
        if self._daily_used >= self.daily_limit:
            return _rate_limited("DAILY", self._rate_headers())
        while self._window and self._window[0] <= now - self.rate_interval_ms / 1000:
            self._window.popleft()
        if len(self._window) >= self.rate_limit:
            return _rate_limited("TEN_SECONDLY_ROLLING", self._rate_headers())
        self._window.append(now)
        self._daily_used += 1
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self._daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.rate_interval_ms),
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(self.rate_limit - len(self._window), 0)),
        }

    def _page_size(self, raw: str | None) -> int:
        if raw is None:
            return 10
        if not _is_id(raw) or int(raw) < 1:
            raise _Invalid(f"limit must be a positive integer, got {raw!r}")
        if int(raw) > MAX_LIMIT and not self.cap_oversized_limit:
            raise _Invalid(f"limit may not exceed {MAX_LIMIT}, got {raw}")
        return min(int(raw), MAX_LIMIT)

    def _resolve(self, raw_id: str, id_property: str | None) -> int | None:
        if id_property == "email":
            return self._by_email.get(raw_id.lower())
        if id_property not in (None, "hs_object_id"):
            raise _Invalid(f"idProperty {id_property!r} is not a unique property of contacts")
        return int(raw_id) if _is_id(raw_id) and int(raw_id) in self._props else None

    # -- control endpoints -------------------------------------------------------------------------

    async def _mutate_endpoint(self, request: Request) -> Response:
        body = await _json_body(request, {"create", "update", "delete"})
        create, update = _count(body.get("create", 0)), _selection(body.get("update"))
        delete = _selection(body.get("delete"))
        created, updated, deleted = self.create(create), self.update(update), self.delete(delete)
        return _json({"created": created, "updated": updated, "deleted": deleted})

    async def _faults_endpoint(self, request: Request) -> Response:
        body = await _json_body(request, {"status_429", "status_500", "malformed", "slow_seconds"})
        slow = body.get("slow_seconds")
        if slow is not None and (isinstance(slow, bool) or not isinstance(slow, int | float) or slow < 0):
            raise _Invalid("slow_seconds must be a non-negative number")
        counts = {key: _count(body.get(key, 0)) for key in ("status_429", "status_500", "malformed")}
        self.inject(**counts, slow_seconds=None if slow is None else float(slow))
        return _json(asdict(self._faults))

    async def _stats_endpoint(self, request: Request) -> Response:
        return _json(self.stats())

    async def _reset_endpoint(self, request: Request) -> Response:
        self.reset()
        return _json(self.stats())


def _iso(ms: int) -> str:
    """Epoch milliseconds as HubSpot writes them: `2024-04-30T09:12:44.117Z`."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _names(params: QueryParams) -> list[str]:
    """Requested properties (comma lists, possibly repeated), unknown ones dropped; else the default set."""
    requested = [name.strip() for value in params.getlist("properties") for name in value.split(",")]
    return sorted({n for n in requested if n in _PROPERTIES}) if requested else list(DEFAULT_PROPERTIES)


def _archived(params: QueryParams) -> bool:
    return params.get("archived", "false").lower() == "true"


def _cursor(after: str | None) -> int:
    if after is None:
        return 0
    if not _is_id(after):
        raise _Invalid(f"after {after!r} is not a cursor this endpoint returned")
    return int(after)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid(f"expected a non-negative integer, got {value!r}")
    return value


def _selection(value: Any) -> int | list[str]:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    return _count(value)


async def _json_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _Invalid(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not set(body) <= allowed:
        raise _Invalid(f"body must be a JSON object with keys from {sorted(allowed)}")
    return body


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), **extra}
    return _json({**body, "category": category}, status)


def _rate_limited(policy: str, headers: dict[str, str]) -> Response:
    window = "daily" if policy == "DAILY" else "ten_secondly_rolling"
    body = {
        "status": "error",
        "message": f"You have reached your {window} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }
    return _json(body, 429, headers)  # HubSpot sends the X-HubSpot-RateLimit-* headers on 429s too


async def _invalid_handler(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc), "VALIDATION_ERROR")


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a seeded simulator under uvicorn (127.0.0.1 unless `--host` says otherwise)."""
    parser = argparse.ArgumentParser(description="Serve a simulated HubSpot CRM v3 contacts API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8410)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--rate-limit", type=int, default=190)
    parser.add_argument("--rate-interval-ms", type=int, default=10_000)
    parser.add_argument("--daily-limit", type=int, default=1_000_000)
    parser.add_argument("--cap-oversized-limit", action="store_true", help="cap limit>100 instead of a 400")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    simulator = HubSpotSimulator(
        args.records,
        args.seed,
        token=args.token,
        rate_limit=args.rate_limit,
        rate_interval_ms=args.rate_interval_ms,
        daily_limit=args.daily_limit,
        cap_oversized_limit=args.cap_oversized_limit,
    )
    logger.info("serving %d simulated HubSpot contacts on http://%s:%d", args.records, args.host, args.port)
    uvicorn.run(simulator.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
