"""Zendesk user writes (api-specs/writes.md §3): create (201 `{"user"}`), `create_or_update` (matched on email:
201 created, 200 updated), update (`PUT`, partial), delete (soft: `active: false`, 200 with the user), and
422 `RecordInvalid` with `details` per field (a blank name, a bad or taken email).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.simulation import Person, Refusal

if TYPE_CHECKING:
    from connectors.zendesk.simulator.app import ZendeskSimulator

__all__ = ["API_WRITER", "UserWrites"]

API_WRITER = "api"  # Person.modified_by of an API write (Zendesk users carry no author)
_TOP = {"name", "email", "phone", "user_fields"}
_USER_FIELDS = {"company": "company", "title": "title"}


class UserWrites:
    """The write endpoints of one `ZendeskSimulator`."""

    def __init__(self, sim: ZendeskSimulator) -> None:
        self.sim = sim

    async def create(self, request: Request) -> Response:
        fields = _fields(await request.body(), creating=True)
        with self.sim.lock:
            self._unique(fields.get("email"), None)
            person = self._create(fields)
            return self.sim.answer({"user": self.sim.render(person, request)}, 201)

    async def create_or_update(self, request: Request) -> Response:
        fields = _fields(await request.body(), creating=False)
        with self.sim.lock:
            found = self.sim.by_email(fields.get("email"))
            if found is None:
                _fields_complete(fields)
                person = self._create(fields)
                return self.sim.answer({"user": self.sim.render(person, request)}, 201)
            self.sim.update([self.sim.external_id(found)], fields, by=API_WRITER)
            return self.sim.answer({"user": self.sim.render(found, request)}, 200)

    async def update(self, request: Request) -> Response:
        fields = _fields(await request.body(), creating=False)
        with self.sim.lock:
            person = self._live(request.path_params["user_id"])
            self._unique(fields.get("email"), person)
            self.sim.update([self.sim.external_id(person)], fields, by=API_WRITER)
            return self.sim.answer({"user": self.sim.render(person, request)})

    async def delete(self, request: Request) -> Response:
        with self.sim.lock:
            person = self._live(request.path_params["user_id"])
            self.sim.soft_delete([self.sim.external_id(person)], by=API_WRITER)
            return self.sim.answer({"user": self.sim.render(person, request)})

    def _create(self, fields: dict[str, Any]) -> Person:
        person = self.sim.find(self.sim.create([fields], by=API_WRITER)[0])
        assert person is not None
        return person

    def _live(self, raw_id: str) -> Person:
        person = self.sim.person(raw_id.removesuffix(".json"))
        if person is None or person.deleted:
            raise Refusal(404, "RecordNotFound", "Not found")
        return person

    def _unique(self, email: Any, person: Person | None) -> None:
        other = self.sim.by_email(email)
        if other is not None and (person is None or other.seq != person.seq):
            taken = {"description": f"Email: {email} is already being used by another user", "error": "DuplicateValue"}
            raise _record_invalid({"email": [taken]})


def _fields(raw: bytes, *, creating: bool) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refusal(400, "InvalidEndpoint", "the body is not JSON") from None
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, dict):
        raise Refusal(400, "InvalidEndpoint", 'the body must be {"user": {...}}')
    details: dict[str, list[dict[str, str]]] = {}
    fields: dict[str, Any] = {}
    for name, value in user.items():
        if name not in _TOP:
            continue  # Zendesk ignores attributes it does not know (and read-only ones like id, url)
        if name == "user_fields":
            if not isinstance(value, dict):
                details[name] = [{"description": "user_fields must be an object", "error": "InvalidValue"}]
                continue
            fields |= {_USER_FIELDS[k]: "" if v is None else str(v) for k, v in value.items() if k in _USER_FIELDS}
        elif name == "name":
            if not isinstance(value, str) or not value.strip():
                message = "Name:  is too short (minimum is 1 character)"
                details["name"] = [{"description": message, "error": "BlankValue"}]
                continue
            first, _, last = value.strip().partition(" ")
            fields |= {"first": first, "last": last}
        elif name == "email":
            if not isinstance(value, str) or "@" not in value or " " in value:
                details["email"] = [
                    {"description": f"Email: {value} is not properly formatted", "error": "InvalidValue"}
                ]
                continue
            fields["email"] = value
        elif name == "phone":
            fields["phone"] = None if value in (None, "") else str(value)
    if creating and "name" not in user and "name" not in details:
        details["name"] = [{"description": "Name:  is too short (minimum is 1 character)", "error": "BlankValue"}]
    if details:
        raise _record_invalid(details)
    return fields


def _fields_complete(fields: dict[str, Any]) -> None:
    if "first" not in fields:
        message = "Name:  is too short (minimum is 1 character)"
        raise _record_invalid({"name": [{"description": message, "error": "BlankValue"}]})


def _record_invalid(details: dict[str, Any]) -> Refusal:
    return Refusal(422, "RecordInvalid", "Record validation errors", details=details)
