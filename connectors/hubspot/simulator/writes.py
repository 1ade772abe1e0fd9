"""HubSpot contact writes (api-specs/writes.md §1): create, update (PATCH), archive, and batch create, update
and archive, with HubSpot's validation envelope, the 409 on a taken email, and the "INTEGRATION" source on
webhooks and property histories of what the API wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from connectors.hubspot.simulator.wire import FIELD_OF, VALUES, invalid, iso, json_object
from connectors.simulation import Person, Refusal

if TYPE_CHECKING:
    from connectors.hubspot.simulator.app import HubSpotSimulator

__all__ = ["API_WRITER", "ContactWrites", "READ_ONLY"]

API_WRITER = "INTEGRATION:3141592"  # Person.modified_by of an API write: the source type and the app id
READ_ONLY = frozenset(VALUES) - frozenset(FIELD_OF)  # createdate, lastmodifieddate, hs_object_id, ...
MAX_BATCH = 100
_INVALID = "Property values were not valid: "


class ContactWrites:
    """The write endpoints of one `HubSpotSimulator`."""

    def __init__(self, sim: HubSpotSimulator) -> None:
        self.sim = sim

    def routes(self, base: str) -> list[Any]:
        sim = self.sim
        return [
            sim.route(f"{base}/batch/create", self.batch_create, "write_requests", ["POST"]),
            sim.route(f"{base}/batch/update", self.batch_update, "write_requests", ["POST"]),
            sim.route(f"{base}/batch/archive", self.batch_archive, "write_requests", ["POST"]),
        ]

    async def create(self, request: Request) -> Response:
        body = json_object(await request.body())
        with self.sim.lock:
            person = self._create(body)
            return self.sim.answer(self.sim.render_written(person), 201)

    async def update(self, request: Request) -> Response:
        body = json_object(await request.body())
        with self.sim.lock:
            person = self._live(request.path_params["contact_id"], request.query_params.get("idProperty"))
            self._update(person, body)
            return self.sim.answer(self.sim.render_written(person))

    async def archive(self, request: Request) -> Response:
        with self.sim.lock:
            person = self.sim.find(request.path_params["contact_id"])
            if person is not None and not person.deleted:
                self.sim.delete([self.sim.external_id(person)], by=API_WRITER)
        return Response(status_code=204)

    async def batch_create(self, request: Request) -> Response:
        inputs = _inputs(await request.body())
        with self.sim.lock:
            for item in inputs:  # all or nothing: check every input before writing any
                self._fields(item, creating=True)
            started = self.sim.clock.now_ms()
            people = [self._create(item) for item in inputs]
            return self._batch(people, started, 201, inputs)

    async def batch_update(self, request: Request) -> Response:
        inputs = _inputs(await request.body())
        with self.sim.lock:
            chosen = [(self._live(str(item.get("id")), item.get("idProperty")), item) for item in inputs]
            for _, item in chosen:
                self._fields(item, creating=False)
            started = self.sim.clock.now_ms()
            for person, item in chosen:
                self._update(person, item)
            return self._batch([p for p, _ in chosen], started, 200, inputs)

    async def batch_archive(self, request: Request) -> Response:
        """204 whatever the state of each id: live, archived already, or unknown."""
        inputs = _inputs(await request.body())
        with self.sim.lock:
            live = [str(i.get("id")) for i in inputs if (p := self.sim.find(str(i.get("id")))) and not p.deleted]
            if live:
                self.sim.delete(live, by=API_WRITER)
        return Response(status_code=204)

    # -- parts ------------------------------------------------------------------------------------------

    def _create(self, body: Mapping[str, Any]) -> Person:
        fields = self._fields(body, creating=True)
        taken = self.sim.by_email(fields.get("email"))
        if taken is not None:
            existing = self.sim.external_id(taken)
            raise Refusal(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        created = self.sim.create([fields], by=API_WRITER)
        person = self.sim.find(created[0])
        assert person is not None
        return person

    def _update(self, person: Person, body: Mapping[str, Any]) -> None:
        fields = self._fields(body, creating=False)
        other = self.sim.by_email(fields.get("email"))
        if other is not None and other.seq != person.seq:
            existing = self.sim.external_id(other)
            raise Refusal(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        self.sim.update([self.sim.external_id(person)], fields, by=API_WRITER)

    def _live(self, raw_id: str, id_property: str | None) -> Person:
        person = self.sim.resolve(raw_id, id_property)
        if person is None or person.deleted:
            raise Refusal(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
        return person

    def _fields(self, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        """The person's fields from `properties`; 400 VALIDATION_ERROR naming every bad property."""
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise invalid("properties must be an object of property name to value")
        errors = [_problem(name, value) for name, value in properties.items()]
        found = [e for e in errors if e is not None]
        if found:
            raise invalid(_INVALID + ", ".join(e["message"] for e in found), errors=found)
        if creating and not {"email", "firstname", "lastname"} & set(properties):
            raise invalid("A contact needs at least one of email, firstname or lastname.")
        return {FIELD_OF[name]: _value(name, value) for name, value in properties.items()}

    def _batch(self, people: list[Person], started: int, status: int, inputs: list[dict[str, Any]]) -> Response:
        """The results echo each input's `objectWriteTraceId` (HubSpot does not promise their order)."""
        results = [
            {
                **self.sim.render_written(p),
                **({"objectWriteTraceId": i["objectWriteTraceId"]} if "objectWriteTraceId" in i else {}),
            }
            for p, i in zip(people, inputs, strict=True)
        ]
        body = {
            "status": "COMPLETE",
            "results": results[::-1] if self.sim.batch_reversed else results,
            "startedAt": iso(started),
            "completedAt": iso(self.sim.clock.now_ms()),
        }
        return self.sim.answer(body, status)


def _problem(name: str, value: Any) -> dict[str, Any] | None:
    context = {"propertyName": [name]}
    if name in READ_ONLY:
        return {"message": f"{name} is a read only property", "code": "READ_ONLY_VALUE", "context": context}
    if name not in FIELD_OF:
        return {"message": f"Property {name!r} does not exist", "code": "PROPERTY_DOESNT_EXIST", "context": context}
    if not isinstance(value, str):
        return {"message": f"{name}: values are strings, got {value!r}", "code": "INVALID_OPTION", "context": context}
    if name == "email" and value and ("@" not in value or " " in value):
        return {"message": f"Email address {value} is invalid", "code": "INVALID_EMAIL", "context": context}
    if name == "email" and value == "":
        return {"message": "email cannot be cleared", "code": "INVALID_EMAIL", "context": context}
    return None


def _value(name: str, value: str) -> str | None:
    """`""` clears a property; the simulated person keeps a cleared phone as null."""
    return None if name == "phone" and value == "" else value


def _inputs(raw: bytes) -> list[dict[str, Any]]:
    inputs = json_object(raw).get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise invalid("inputs must be a list of objects")
    if not 1 <= len(inputs) <= MAX_BATCH:
        raise invalid(f"a batch holds 1 to {MAX_BATCH} inputs, got {len(inputs)}")
    return inputs
