"""Pipedrive person writes (api-specs/writes.md §6): v2 `POST /api/v2/persons`, `PATCH /api/v2/persons/{id}`,
`DELETE /api/v2/persons/{id}` (soft), v1 `POST/PUT/DELETE /v1/persons[/{id}]`, the `{success, data}` envelope,
400 `{success: false, error}` for invalid input (a missing name), no uniqueness on email, and webhooks whose
`meta.user_id` is the API user and `change_source` "api" for these writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.pipedrive.simulator.wire import v1, v2
from connectors.simulation import Person, Refusal

if TYPE_CHECKING:
    from connectors.pipedrive.simulator.app import PipedriveSimulator

__all__ = ["API_USER_ID", "PersonWrites", "WRITE_COST"]

API_USER_ID = 19  # the user the simulator's API token belongs to (the account owner is 18)
WRITE_COST = {"v2": 5, "v1": 10}  # tokens a write spends; v2 costs less than v1


class PersonWrites:
    """The write endpoints of one `PipedriveSimulator`, v2 and v1."""

    def __init__(self, sim: PipedriveSimulator) -> None:
        self.sim = sim

    async def create(self, request: Request) -> Response:
        version = _version(request)
        fields = _fields(await request.body(), version, creating=True)
        with self.sim.lock:
            person = self.sim.find(self.sim.create([fields], by=str(API_USER_ID))[0])
            assert person is not None
            return self._reply(person, version, 201)

    async def update(self, request: Request) -> Response:
        version = _version(request)
        fields = _fields(await request.body(), version, creating=False)
        with self.sim.lock:
            person = self._live(request.path_params["id"])
            self.sim.update([self.sim.external_id(person)], fields, by=str(API_USER_ID))
            return self._reply(person, version, 200)

    async def delete(self, request: Request) -> Response:
        with self.sim.lock:
            person = self._live(request.path_params["id"])
            self.sim.delete([self.sim.external_id(person)], by=str(API_USER_ID))
            return self.sim.answer({"success": True, "data": {"id": person.seq + 1}}, 200, request)

    def _live(self, raw: str) -> Person:
        if not raw.isascii() or not raw.isdigit():
            raise Refusal(400, "invalid", "Validation failed: id: Parameter 'id' must be an integer")
        person = self.sim.find(raw)
        if person is None or person.deleted:
            raise Refusal(404, "not_found", "Person not found")
        return person

    def _reply(self, person: Person, version: str, status: int) -> Response:
        data = v2(person) if version == "v2" else v1(person)
        return self.sim.answer({"success": True, "data": data}, status)


def _version(request: Request) -> str:
    return "v2" if request.url.path.startswith("/api/v2/") else "v1"


def _fields(raw: bytes, version: str, *, creating: bool) -> dict[str, Any]:
    """The person's fields from a v2 (`emails`/`phones` lists) or v1 (`email`/`phone` strings or lists) body."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refusal(400, "invalid", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "invalid", "Request body must be an object")
    fields: dict[str, Any] = {}
    name = body.get("name")
    if name is not None or creating:
        if not isinstance(name, str) or not name.strip():
            raise Refusal(400, "invalid", "Name must be given.")
        first, _, last = name.strip().partition(" ")
        fields |= {"first": first, "last": last}
    for key, target in (("first_name", "first"), ("last_name", "last"), ("job_title", "title")):
        if key in body:
            fields[target] = _text(key, body[key])
    emails = body.get("emails" if version == "v2" else "email")
    if emails is not None:
        fields["email"] = _primary("email", emails) or ""
    phones = body.get("phones" if version == "v2" else "phone")
    if phones is not None:
        fields["phone"] = _primary("phone", phones)
    return fields


def _text(key: str, value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise Refusal(400, "invalid", f"Validation failed: {key}: must be a string")
    return value or ""


def _primary(key: str, value: Any) -> str | None:
    """The primary value of `[{value, primary, label}]`, or a plain string (v1)."""
    if isinstance(value, str):
        return value or None
    if not isinstance(value, list) or not all(isinstance(item, dict) and "value" in item for item in value):
        raise Refusal(400, "invalid", f"Validation failed: {key}s: must be a list of {{value, primary, label}}")
    if not value:
        return None
    chosen = next((item for item in value if item.get("primary")), value[0])
    text = chosen["value"]
    if not isinstance(text, str):
        raise Refusal(400, "invalid", f"Validation failed: {key}s.value: must be a string")
    return text or None
