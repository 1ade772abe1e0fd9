"""Driving a simulator from a test: its Python control API (`Controllable`) and the same over HTTP (`/_sim/*`).

POST /_sim/mutate   {"create": 2 | [{"email": ...}], "update": 3 | ["id"] | {"id": {"title": ...}},
                     "delete": 1 | ["id"], "soft_delete": ..., "purge": ..., "restore": ["id"],
                     "merge": {"primary": "id", "merged": ["id", ...]}}
POST /_sim/faults   {"status_429": 2, "retry_after": 0.01, ...}   (see `Faults`)
GET  /_sim/clock    the simulated time;  POST /_sim/clock {"advance": seconds}
GET  /_sim/records        every record's state (`?collection=`: a simulator's second set, Graph's contacts)
GET  /_sim/records/{id}   one record's state: deleted, purged, history
GET  /_sim/stats    requests by kind, live and deleted records
POST /_sim/reset    clear faults, counters and rate-limit usage
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.simulation.answers import json_response
from connectors.simulation.clock import SimClock
from connectors.simulation.faults import Faults
from connectors.simulation.people import People, Person

__all__ = ["Controllable", "control_routes"]

Selection = int | Sequence[str]  # a number of random live records, or ids
_SELECTIONS = ("update", "delete", "soft_delete", "purge", "restore")


class Controllable:
    """The records and faults of a simulator, as a test drives them. Ids are the app's external ids.

    `delete` is the app's ordinary deletion (soft where the app has a recycle bin), `soft_delete` the
    recoverable one, `purge` the permanent one (of live or soft-deleted records), `restore` undoes a soft
    delete. Each mutation is reported to `changed`, where apps with webhooks queue their notifications.
    """

    clock: SimClock
    people: People
    lock: threading.RLock
    faults: Faults
    counts: dict[str, int]
    _by_id: dict[str, Person]

    def external_id(self, person: Person) -> str:
        raise NotImplementedError

    def changed(self, kind: str, people: Sequence[Person]) -> None:
        """`people` were created, updated, deleted, purged, restored or merged (`kind`); the base does nothing."""

    def create(self, n: int | Sequence[Mapping[str, Any]], *, by: str | None = None) -> list[str]:
        """`n` new records, or one per mapping of fields (first, last, email, phone, company, title); `by`:
        the API client that wrote them (None: a person in the app; see `Person.modified_by`)."""
        with self.lock:
            created = self.people.create(n, (), by=by) if isinstance(n, int) else self.people.create(0, n, by=by)
            self._by_id.update({self.external_id(p): p for p in created})
            return self._report("created", created)

    def update(self, ids: Selection, fields: Mapping[str, Any] | None = None, *, by: str | None = None) -> list[str]:
        """Change `fields` of the chosen live records (by default each gets a new job title)."""
        with self.lock:
            return self._report("updated", self.people.update(self.select(ids), fields, by=by))

    def delete(self, ids: Selection, *, by: str | None = None) -> list[str]:
        with self.lock:
            return self._report("deleted", self.people.delete(self.select(ids), by=by))

    def soft_delete(self, ids: Selection) -> list[str]:
        return self.delete(ids)

    def purge(self, ids: Selection) -> list[str]:
        with self.lock:
            return self._report("purged", self.people.purge(self.select(ids, deleted=True)))

    def restore(self, ids: Selection) -> list[str]:
        with self.lock:
            chosen = [p for p in self.select(ids, deleted=True) if p.deleted]
            return self._report("restored", self.people.restore(chosen))

    def merge(self, primary: str, merged: Sequence[str]) -> list[str]:
        """Merge live records into the live `primary`; the merged ones are gone. ValueError where the app cannot."""
        raise ValueError(f"{type(self).__name__} does not merge records")

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward: tokens age, retention windows pass, retries fall due."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self.clock.advance(seconds)

    def people_of(self, collection: str | None) -> tuple[People, Callable[[Person], str]]:
        """The people behind `collection` (None: the simulator's main set) and their external ids."""
        if collection is not None:
            raise ValueError(f"{type(self).__name__} keeps one set of records; no collection {collection!r}")
        return self.people, self.external_id

    def ids(self) -> list[str]:
        """Live ids, in creation order."""
        with self.lock:
            return [self.external_id(p) for p in self.people.live()]

    def find(self, external_id: str) -> Person | None:
        return self._by_id.get(external_id)

    def select(self, ids: Selection, *, deleted: bool = False) -> list[Person]:
        """`ids` random live people, or the people of these ids (unknown ones, and deleted ones unless
        `deleted`, left out; purged ones always), by seq."""
        if isinstance(ids, int):
            return self.people.sample(ids)
        chosen = [self._by_id.get(str(i)) for i in ([ids] if isinstance(ids, str) else ids)]
        kept = [p for p in chosen if p is not None and not p.purged and (deleted or not p.deleted)]
        return sorted(kept, key=lambda p: p.seq)

    def _report(self, kind: str, people: Sequence[Person]) -> list[str]:
        if people:
            self.changed(kind, people)
        return [self.external_id(p) for p in people]


def control_routes(sim: Any) -> list[BaseRoute]:
    """The `/_sim/*` endpoints of a simulator (a `SimulatorBase`)."""
    endpoints = _Endpoints(sim)
    return [
        Route("/_sim/mutate", endpoints.mutate, methods=["POST"]),
        Route("/_sim/faults", endpoints.faults, methods=["POST"]),
        Route("/_sim/clock", endpoints.clock, methods=["GET", "POST"]),
        Route("/_sim/records", endpoints.records, methods=["GET"]),
        Route("/_sim/records/{record_id:path}", endpoints.record, methods=["GET"]),
        Route("/_sim/stats", endpoints.stats, methods=["GET"]),
        Route("/_sim/reset", endpoints.reset, methods=["POST"]),
    ]


class _Endpoints:
    """The control endpoints of one simulator; a bad body is a 400 `{"error": ...}`."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    async def mutate(self, request: Request) -> Response:
        sim = self.sim
        try:
            body = _mutation(await request.body())
            answer = {"created": sim.create(body.get("create", 0))}
            for name in _SELECTIONS:
                if name in body or name in ("update", "delete"):
                    answer[f"{name}d" if name.endswith("e") else f"{name}ed"] = _apply(sim, name, body.get(name))
            if "merge" in body:
                answer["merged"] = sim.merge(str(body["merge"]["primary"]), [str(i) for i in body["merge"]["merged"]])
        except (ValueError, TypeError, KeyError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(answer)

    async def faults(self, request: Request) -> Response:
        try:
            self.sim.inject(**_object(await request.body()))
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(asdict(self.sim.faults))

    async def clock(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                seconds = _object(await request.body()).get("advance", 0)
                if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                    raise ValueError(f"advance must be a number of seconds, got {seconds!r}")
                self.sim.advance(seconds)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
        now = datetime.fromtimestamp(self.sim.clock.time(), UTC).isoformat(timespec="milliseconds")
        return json_response({"now": now.replace("+00:00", "Z"), "offset_seconds": self.sim.clock.offset})

    async def record(self, request: Request) -> Response:
        person = self.sim.find(request.path_params["record_id"])
        if person is None:
            return json_response({"error": "no such record"}, 404)
        return json_response({"id": self.sim.external_id(person), **_state(person, self.sim)})

    async def records(self, request: Request) -> Response:
        try:
            people, external_id = self.sim.people_of(request.query_params.get("collection"))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        with self.sim.lock:
            states = [{"id": external_id(p), **_state(p, self.sim)} for p in people.all]
        return json_response(states)

    async def stats(self, request: Request) -> Response:
        return json_response(self.sim.stats())

    async def reset(self, request: Request) -> Response:
        self.sim.reset()
        return json_response(self.sim.stats())


def _state(person: Person, sim: Any) -> dict[str, Any]:
    by_seq = sim.people.get
    fields = {name: getattr(person, name) for name in ("first", "last", "email", "phone", "company", "title")}
    return {
        **fields,
        "created_ms": person.created_ms,
        "modified_ms": person.modified_ms,
        "deleted": person.deleted,
        "purged": person.purged,
        "deleted_ms": person.deleted_ms,
        "modified_by": person.modified_by,
        "merged_into": None if person.merged_into is None else sim.external_id(by_seq(person.merged_into)),
        "history": [asdict(change) for change in person.history],
    }


def _mutation(raw: bytes) -> dict[str, Any]:
    """The body of `/_sim/mutate`, checked; ValueError names what is wrong."""
    body = _object(raw)
    if unknown := set(body) - {"create", "merge", *_SELECTIONS}:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: create, merge, {', '.join(_SELECTIONS)}")
    create = body.get("create", 0)
    if not (isinstance(create, list) and all(isinstance(c, dict) for c in create)):
        _count("create", create)
    for name in _SELECTIONS:
        value = body.get(name)
        if isinstance(value, dict) and name == "update" and all(isinstance(v, dict) for v in value.values()):
            continue
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str | int) for v in value)):
            _count(name, value)
    return body


def _apply(sim: Any, name: str, value: Any) -> list[str]:
    """Call the control method `name` for a body value: a count, ids, or (update) ids → fields."""
    if isinstance(value, dict):
        return [done for record_id, fields in value.items() for done in sim.update([str(record_id)], fields)]
    selection = [str(v) for v in value] if isinstance(value, list) else value or []
    done: list[str] = getattr(sim, name)(selection)
    return done


def _object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, ids, or (create) a list of field objects")
    return value
