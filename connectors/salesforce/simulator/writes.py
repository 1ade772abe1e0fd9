"""Salesforce sObject Contact writes (api-specs/writes.md §2): create (201 `{id, success, errors}`), update
(204), delete (204, to the Recycle Bin), `If-Unmodified-Since` (412 when stale, 400 when malformed), errors as
a JSON array of `{message, errorCode, fields}`, and `LastModifiedById` naming the API user of a write.
"""

from __future__ import annotations

import email.utils
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.salesforce.simulator.records import FIELDS, salesforce_id
from connectors.simulation import Person, Refusal

if TYPE_CHECKING:
    from connectors.salesforce.simulator.app import SalesforceSimulator

__all__ = ["API_USER_ID", "UI_USER_ID", "WRITABLE", "ContactWrites", "last_modified_by"]

API_USER_ID = salesforce_id("User", 62**8 + 10)  # the integration user the simulator's token acts as
UI_USER_ID = salesforce_id("User", 1_000_000)  # a person working in Salesforce
WRITABLE = {"FirstName": "first", "LastName": "last", "Email": "email", "Phone": "phone", "Title": "title"}
_NO_ID = "The Id field should not be specified in the sobject data."
_READ_ONLY = "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."  # noqa: E501


class ContactWrites:
    """The write endpoints of one `SalesforceSimulator` (Contact only; other sObjects are read-only here)."""

    def __init__(self, sim: SalesforceSimulator) -> None:
        self.sim = sim

    async def create(self, request: Request) -> Response:
        _contact(request)
        fields = _fields(await request.body(), creating=True)
        with self.sim.lock:
            created = self.sim.create([fields], by=API_USER_ID)
        return self.sim.answer({"id": created[0], "success": True, "errors": []}, 201)

    async def update(self, request: Request) -> Response:
        _contact(request)
        fields = _fields(await request.body(), creating=False)
        with self.sim.lock:
            person = self._live(request.path_params["record_id"])
            _precondition(request, person)
            self.sim.update([self.sim.external_id(person)], fields, by=API_USER_ID)
        return Response(status_code=204, headers=self.sim.headers(request))

    async def delete(self, request: Request) -> Response:
        _contact(request)
        with self.sim.lock:
            person = self._live(request.path_params["record_id"])
            self.sim.delete([self.sim.external_id(person)], by=API_USER_ID)
        return Response(status_code=204, headers=self.sim.headers(request))

    def _live(self, raw_id: str) -> Person:
        person = self.sim.contact(raw_id)
        if person is None or person.purged:
            raise Refusal(404, "NOT_FOUND", "The requested resource does not exist")
        if person.deleted:
            raise Refusal(404, "ENTITY_IS_DELETED", "entity is deleted")
        return person


def _contact(request: Request) -> None:
    if request.path_params["sobject"].lower() != "contact":
        name = request.path_params["sobject"]
        raise Refusal(400, "INVALID_TYPE", f"sObject type '{name}' is not writable through this simulator")


def _fields(raw: bytes, *, creating: bool) -> dict[str, Any]:
    """The person's fields from a flat sObject body; the first problem as Salesforce reports it."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refusal(400, "JSON_PARSER_ERROR", "Unexpected character: the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of Contact from a non-object")
    body = {k: v for k, v in body.items() if k != "attributes"}
    if any(k.lower() == "id" for k in body):
        raise Refusal(400, "INVALID_FIELD", _NO_ID, fields=["Id"])
    canonical = {next((f for f in FIELDS["Contact"] if f.lower() == k.lower()), k): v for k, v in body.items()}
    if unknown := [k for k in canonical if k not in FIELDS["Contact"]]:
        raise Refusal(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type Contact", fields=[])
    if read_only := [k for k in canonical if k not in WRITABLE]:
        raise Refusal(400, "INVALID_FIELD_FOR_INSERT_UPDATE", _READ_ONLY.format(", ".join(read_only)), fields=read_only)
    for name, value in canonical.items():
        if value is not None and not isinstance(value, str):
            raise Refusal(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {value!r} for {name}")
    if (creating and not canonical.get("LastName")) or ("LastName" in canonical and not canonical["LastName"]):
        raise Refusal(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", fields=["LastName"])
    if (address := canonical.get("Email")) is not None and ("@" not in address or " " in address):
        raise Refusal(400, "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {address}", fields=["Email"])
    return {WRITABLE[k]: _value(k, v) for k, v in canonical.items()}


def _value(name: str, value: str | None) -> str | None:
    return value if name == "Phone" else (value or "")


def _precondition(request: Request, person: Person) -> None:
    """`If-Unmodified-Since`: 412 when the record changed after it (to the second), 400 when it is no date."""
    header = request.headers.get("if-unmodified-since")
    if header is None:
        return
    try:
        since = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        raise Refusal(400, "MALFORMED_QUERY", f"Invalid If-Unmodified-Since header value: {header}") from None
    if person.modified_ms // 1000 > int(since.timestamp()):
        raise Refusal(412, "PRECONDITION_FAILED", "The requested resource has been modified since the date given")


def last_modified_by(person: Person) -> str:
    return API_USER_ID if person.modified_by == API_USER_ID else UI_USER_ID
