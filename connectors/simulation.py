"""What every app simulator shares: seeded people with a change log, injectable faults, the control API.

A simulator (`connectors/<app>/simulator.py`) subclasses `SimulatorBase`, renders `Person`s in its API's
shape and answers its API's URLs; the base gives it seeding, mutations, fault injection, request counting
and the `/_sim/*` control endpoints, so the contract suite drives every simulator the same way:

    sim = make_simulator(records=250, seed=0)       # module-level factory of each simulator module
    sim.create(2); sim.update(3); sim.delete(["..."])
    sim.inject(status_429=2, retry_after=0.01, expire_tokens=True, repeat_token=1)
    parameters, credentials = sim.connection("http://sim")
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import orjson
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.oauth_simulation import OAuthQuirks, OAuthServer

__all__ = ["Faults", "People", "Person", "SimulatorBase", "json_response", "serve"]

logger = logging.getLogger(__name__)

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: seeded people are created 10 s apart from here
_FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Katherine")
_LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Ng")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")
_TITLES = ("Engineer", "Analyst", "Manager", "Director", "Designer", "Consultant", "Founder", "Researcher")


@dataclass
class Person:
    """One simulated user/contact, whatever the app calls it."""

    seq: int  # creation order, stable: simulators derive their id format from it
    first: str
    last: str
    email: str
    phone: str | None
    company: str
    title: str
    created_ms: int
    modified_ms: int
    deleted_ms: int | None = None
    change: int = 0  # position in the change log of the last mutation

    @property
    def deleted(self) -> bool:
        return self.deleted_ms is not None

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"


class People:
    """Deterministic people and their change log; the same seed gives the same people."""

    def __init__(self, records: int, seed: int | str = 0) -> None:
        self._rng = random.Random(seed)
        self.all: list[Person] = []
        self._clock_ms = 0
        self.last_change = 0
        for i in range(records):
            created = EPOCH_MS + i * 10_000 + int(self._rng.random() * 10_000)
            self._add(created, created + int(self._rng.random() * 90 * 86_400_000))

    def live(self) -> list[Person]:
        return [p for p in self.all if not p.deleted]

    def get(self, seq: int) -> Person | None:
        return self.all[seq] if 0 <= seq < len(self.all) else None

    def changed_since(self, change: int) -> list[Person]:
        """People (deleted ones included) whose last mutation came after `change`, oldest change first."""
        return sorted((p for p in self.all if p.change > change), key=lambda p: p.change)

    def create(self, n: int) -> list[Person]:
        return [self._add(now, now) for now in (self.tick() for _ in range(n))]

    def update(self, chosen: Sequence[Person]) -> list[Person]:
        for person in chosen:
            person.title = self._rng.choice([t for t in _TITLES if t != person.title])
            person.modified_ms = self.tick()
            person.change = self._next_change()
        return list(chosen)

    def delete(self, chosen: Sequence[Person]) -> list[Person]:
        for person in chosen:
            person.deleted_ms = person.modified_ms = self.tick()
            person.change = self._next_change()
        return list(chosen)

    def sample(self, n: int) -> list[Person]:
        live = self.live()
        return sorted(self._rng.sample(live, min(n, len(live))), key=lambda p: p.seq)

    def tick(self) -> int:
        """Now in epoch ms, strictly later than every timestamp handed out before."""
        self._clock_ms = max(int(time.time() * 1000), self._clock_ms + 1)
        return self._clock_ms

    def _next_change(self) -> int:
        self.last_change += 1
        return self.last_change

    def _add(self, created_ms: int, modified_ms: int) -> Person:
        draw, seq = self._rng.random, len(self.all)  # random() is several times cheaper than choice()
        first, last = _FIRST[int(draw() * len(_FIRST))], _LAST[int(draw() * len(_LAST))]
        person = Person(
            seq=seq,
            first=first,
            last=last,
            email=f"{first}.{last}{seq}@example.org".lower(),
            phone=None if draw() < 0.25 else f"+1 555 {int(draw() * 10_000_000):07d}",
            company=_COMPANIES[int(draw() * len(_COMPANIES))],
            title=_TITLES[int(draw() * len(_TITLES))],
            created_ms=created_ms,
            modified_ms=modified_ms,
            change=self._next_change(),
        )
        self.all.append(person)
        self._clock_ms = max(self._clock_ms, modified_ms)
        return person


@dataclass
class Faults:
    """Faults waiting for the next API requests; counts add up and are used 429 → 5xx → malformed."""

    status_429: int = 0
    retry_after: float = 1.0  # seconds, for APIs that send Retry-After
    status_500: int = 0
    malformed: int = 0
    slow_seconds: float = 0.0  # delays every served request until reset()
    expire_tokens: bool = False  # every incremental token handed out so far is refused as expired
    repeat_token: int = 0  # the next N pages hand out the same next-page token again

    def take(self) -> str | None:
        for name in ("status_429", "status_500", "malformed"):
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return name
        return None


class SimulatorBase:
    """Seeding, mutations, faults, counters and `/_sim/*` for one app's simulator.

    Subclasses set `connector`, implement `external_id`, `api_routes`, `authenticate` and `fault_response`,
    and call `admit` first in every API endpoint.
    """

    connector: ClassVar[str]
    tokens_expire: ClassVar[bool] = True  # False where the incremental token is a timestamp the app always accepts
    oauth_quirks: ClassVar[OAuthQuirks | None] = None  # the app's OAuth endpoints, served as `self.oauth`

    def __init__(self, records: int = 100, seed: int | str = 0, *, token: str = "sim-token") -> None:
        self.token = token
        self.people = People(records, seed)
        self.lock = threading.RLock()
        self.faults = Faults()
        self.counts: dict[str, int] = {"requests": 0}
        self._by_id: dict[str, Person] = {self.external_id(p): p for p in self.people.all}
        self.oauth = OAuthServer(self.oauth_quirks) if self.oauth_quirks else None
        oauth_routes = self.oauth.routes() if self.oauth else []
        self.app = Starlette(routes=[*self.api_routes(), *self._control_routes(), *oauth_routes])

    # -- what each app provides ---------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        raise NotImplementedError

    def api_routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def authenticate(self, request: Request) -> Response | None:
        """None when the request carries this simulator's credentials, else the app's 401/403."""
        raise NotImplementedError

    def fault_response(self, fault: str) -> Response:
        """The app's own answer for an injected `status_429`, `status_500` or `malformed` fault."""
        raise NotImplementedError

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, SecretStr]]:
        """Connection parameters and credentials that reach this simulator at `base_url`."""
        raise NotImplementedError

    def bad_credentials(self) -> dict[str, SecretStr]:
        """Credentials this simulator refuses."""
        return {name: SecretStr("wrong-" + value.get_secret_value()) for name, value in self.connection("")[1].items()}

    # -- the control API --------------------------------------------------------------------------

    def create(self, n: int) -> list[str]:
        with self.lock:
            created = self.people.create(n)
            self._by_id.update({self.external_id(p): p for p in created})
            return [self.external_id(p) for p in created]

    def update(self, ids: int | Sequence[str]) -> list[str]:
        with self.lock:
            return [self.external_id(p) for p in self.people.update(self._select(ids))]

    def delete(self, ids: int | Sequence[str]) -> list[str]:
        with self.lock:
            return [self.external_id(p) for p in self.people.delete(self._select(ids))]

    def ids(self) -> list[str]:
        """Live ids, in creation order."""
        with self.lock:
            return [self.external_id(p) for p in self.people.live()]

    def find(self, external_id: str) -> Person | None:
        return self._by_id.get(external_id)

    def inject(self, **faults: Any) -> None:
        """Add faults (see `Faults`); numbers add up, flags and slow_seconds replace."""
        with self.lock:
            for name, value in faults.items():
                if not hasattr(self.faults, name):
                    raise ValueError(f"unknown fault {name!r}; known: {sorted(asdict(Faults()))}")
                if name in ("status_429", "status_500", "malformed", "repeat_token"):
                    value = getattr(self.faults, name) + int(value)
                setattr(self.faults, name, value)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                **self.counts,
                "records": len(self.people.live()),
                "deleted": len(self.people.all) - len(self.people.live()),
            }

    def reset(self) -> None:
        """Clear faults and counters; the data stays."""
        with self.lock:
            self.faults = Faults()
            self.counts = {"requests": 0}

    def take_repeat(self) -> bool:
        """True when this page must hand out the same next-page token again (a looping API)."""
        with self.lock:
            if self.faults.repeat_token > 0:
                self.faults.repeat_token -= 1
                return True
            return False

    async def admit(self, request: Request, kind: str = "api") -> Response | None:
        """Count the request, then answer it early for bad credentials or an injected fault."""
        with self.lock:
            self.counts["requests"] += 1
            self.counts[kind] = self.counts.get(kind, 0) + 1
            oauth_ok = self.oauth is not None and self.oauth.accepts(request.headers.get("authorization", ""))
            early = None if oauth_ok else self.authenticate(request)
            if early is None and (fault := self.faults.take()) is not None:
                early = self.fault_response(fault)
            delay = self.faults.slow_seconds
        if early is None and delay > 0:
            await asyncio.sleep(delay)
        return early

    def _select(self, ids: int | Sequence[str]) -> list[Person]:
        if isinstance(ids, int):
            return self.people.sample(ids)
        chosen = [self._by_id.get(str(i)) for i in ([ids] if isinstance(ids, str) else ids)]
        return sorted((p for p in chosen if p is not None and not p.deleted), key=lambda p: p.seq)

    def _control_routes(self) -> list[BaseRoute]:
        return [
            Route("/_sim/mutate", self._mutate, methods=["POST"]),
            Route("/_sim/faults", self._faults, methods=["POST"]),
            Route("/_sim/stats", lambda _: json_response(self.stats()), methods=["GET"]),
            Route("/_sim/reset", self._reset, methods=["POST"]),
        ]

    async def _mutate(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        return json_response(
            {
                "created": self.create(int(body.get("create", 0))),
                "updated": self.update(body.get("update") or []),
                "deleted": self.delete(body.get("delete") or []),
            }
        )

    async def _faults(self, request: Request) -> Response:
        try:
            self.inject(**orjson.loads(await request.body() or b"{}"))
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(asdict(self.faults))

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return json_response(self.stats())


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def serve(make: Callable[..., SimulatorBase], description: str, argv: Sequence[str] | None = None) -> None:
    """`python -m connectors.<app>.simulator --port P --records N --seed S --token T [--token-lifetime S]`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default="sim-token")
    parser.add_argument("--token-lifetime", type=float, default=None, help="seconds an OAuth access token lives")
    args = parser.parse_args(argv)
    simulator = make(records=args.records, seed=args.seed, token=args.token)
    if args.token_lifetime is not None and simulator.oauth is not None:
        simulator.oauth.configure(lifetime_seconds=args.token_lifetime)
    logger.info("serving %s with %d records on http://%s:%d", simulator.connector, args.records, args.host, args.port)
    uvicorn.run(simulator.app, host=args.host, port=args.port, log_level="warning")
