"""Google People contact writes (api-specs/writes.md §5): `people:createContact`, `{resourceName}:updateContact`
with a required `updatePersonFields` mask and the contact's etag in the body (stale: 400 FAILED_PRECONDITION,
or 412 with `legacy_etag_412`), `{resourceName}:deleteContact` (`{}`), a per-minute write quota (429
RESOURCE_EXHAUSTED), and the AIP-193 error body. Each write gives the contact a new etag; it shows in the next
sync delta like any other change (deleted contacts as `metadata.deleted: true`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.google_people.simulator import render
from connectors.simulation import Person, Refusal

if TYPE_CHECKING:
    from connectors.google_people.simulator.app import GooglePeopleSimulator

__all__ = ["API_WRITER", "CONTACT_FIELDS", "ContactWrites"]

API_WRITER = "api"  # Person.modified_by of an API write (Google keeps no author)
CONTACT_FIELDS = ("names", "emailAddresses", "phoneNumbers", "organizations")  # what the simulator stores
_SHOWN = frozenset({*CONTACT_FIELDS, "metadata"})
_NO_ETAG = "Request must set person.etag or person.metadata.sources.etag for the source that is being updated."
_STALE = "The person's etag is not current: the contact has changed since it was read. Read it again and merge."


def _invalid(message: str) -> Refusal:
    return Refusal(400, "INVALID_ARGUMENT", message)


class ContactWrites:
    """The write endpoints of one `GooglePeopleSimulator`."""

    def __init__(self, sim: GooglePeopleSimulator) -> None:
        self.sim = sim

    async def create(self, request: Request) -> Response:
        body = _body(await request.body())
        fields = _fields(body, CONTACT_FIELDS, creating=True)
        with self.sim.lock:
            person = self.sim.find(self.sim.create([fields], by=API_WRITER)[0])
            assert person is not None
            return self.sim.answer(render.person(person, _SHOWN))

    async def modify(self, request: Request) -> Response:
        """`PATCH people/c1:updateContact` and `DELETE people/c1:deleteContact` share the path."""
        raw, _, verb = request.path_params["person_id"].partition(":")
        expected = {"PATCH": "updateContact", "DELETE": "deleteContact"}[request.method]
        if verb != expected:
            raise Refusal(404, "NOT_FOUND", render.NOT_FOUND)
        with self.sim.lock:
            person = self.sim.find(f"people/{raw}")
            if person is None or person.deleted:
                raise Refusal(404, "NOT_FOUND", render.NOT_FOUND)
        if verb == "deleteContact":
            with self.sim.lock:
                self.sim.delete([self.sim.external_id(person)], by=API_WRITER)
            return self.sim.answer({})
        return await self._update(request, person)

    async def _update(self, request: Request, person: Person) -> Response:
        mask = [name.strip() for name in request.query_params.get("updatePersonFields", "").split(",") if name.strip()]
        if not mask:
            raise _invalid("updatePersonFields mask is required. Please specify one or more valid paths.")
        if unknown := [name for name in mask if name not in CONTACT_FIELDS]:
            raise _invalid(f'Invalid updatePersonFields mask path: "{unknown[0]}".')
        body = _body(await request.body())
        etag = body.get("etag") or next(
            (s.get("etag") for s in (body.get("metadata") or {}).get("sources") or [] if isinstance(s, dict)), None
        )
        if not etag:
            raise _invalid(_NO_ETAG)
        fields = _fields(body, tuple(mask), creating=False)
        with self.sim.lock:
            current = render.person(person, frozenset())["etag"]
            if etag.lstrip("#%") != current.lstrip("#%"):
                if self.sim.legacy_etag_412:
                    raise Refusal(412, "FAILED_PRECONDITION", _STALE)
                raise Refusal(400, "FAILED_PRECONDITION", _STALE, reason="failedPrecondition")
            self.sim.update([self.sim.external_id(person)], fields, by=API_WRITER)
            return self.sim.answer(render.person(person, _SHOWN))


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid("Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. Expected a Person object.")
    return body


def _fields(body: dict[str, Any], masked: tuple[str, ...], *, creating: bool) -> dict[str, Any]:
    """The person's fields from the masked Person fields; a masked field absent from the body is cleared."""
    fields: dict[str, Any] = {}
    for name in masked:
        items = body.get(name, [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _invalid(f"Invalid value at 'person.{name}': expected a list of objects.")
        if name == "names" and len(items) > 1:
            raise _invalid("Only one name may be set: names is a singleton field.")
        first = _primary(items)
        if name == "names":
            fields |= {"first": _text(first, "givenName"), "last": _text(first, "familyName")}
        elif name == "emailAddresses":
            fields["email"] = _text(first, "value")
        elif name == "phoneNumbers":
            fields["phone"] = _text(first, "value") or None
        elif name == "organizations":
            fields |= {"company": _text(first, "name"), "title": _text(first, "title")}
    if creating and not any(body.get(name) for name in CONTACT_FIELDS):
        raise _invalid("A contact needs at least one field: names, emailAddresses, phoneNumbers or organizations.")
    return fields


def _primary(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The primary item (metadata.primary), else the first; {} for none."""
    return next((i for i in items if (i.get("metadata") or {}).get("primary")), items[0] if items else {})


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key, "")
    if not isinstance(value, str):
        raise _invalid(f"Invalid value at '{key}': expected a string.")
    return value
