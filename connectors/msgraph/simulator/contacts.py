"""The signed-in mailbox's Outlook contacts (`/v1.0/me/contacts`), Graph's practical writable object
(api-specs/writes.md §4): list, get, delta, create (201), update (`PATCH`, 200, `If-Match` → 412 when the
change key moved), delete (204, then `@removed` in delta), and `RequestBodyRead` 400s for unknown properties.

Contacts are a second set of seeded people, apart from the directory's users.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from connectors.msgraph.simulator.wire import JSON, root
from connectors.simulation import People, Person, Refusal

__all__ = ["API_WRITER", "Contacts", "contact_id"]

API_WRITER = "api"  # Person.modified_by of an API write (Graph contacts carry no author)
_WRITABLE = {"givenName", "surname", "emailAddresses", "businessPhones", "companyName", "jobTitle", "displayName"}
_READ_ONLY = {"id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId", "@odata.etag"}
_FOLDER = "AAMkADcontactsfolder0000AAA="
_MAX_TOP = 1000
_UNKNOWN = (
    "The property '{}' does not exist on type 'microsoft.graph.contact'. Make sure to only use property names "
    "that are defined by the type or mark the type as open type."
)


def contact_id(seq: int) -> str:
    return f"AAMkADcontact{seq:08d}AAA="


class Contacts:
    """One mailbox's contacts, served through the simulator's admission (`route`) and error format."""

    def __init__(self, route: Callable[..., BaseRoute], records: int, seed: int | str, people: People) -> None:
        self.route = route
        self.people = People(records, f"{seed}-contacts", people.clock)
        self.lock = threading.RLock()
        self.by_id = {contact_id(p.seq): p for p in self.people.all}

    def routes(self) -> list[BaseRoute]:
        base = "/v1.0/me/contacts"
        return [
            self.route(base, self.list, "list_requests"),
            self.route(base, self.post, "write_requests", ["POST"]),
            self.route(f"{base}/delta", self.delta, "delta_requests"),
            self.route(base + "/{contact_id}", self.get, "get_requests"),
            self.route(base + "/{contact_id}", self.patch, "write_requests", ["PATCH"]),
            self.route(base + "/{contact_id}", self.remove, "write_requests", ["DELETE"]),
        ]

    # -- the Python control API (as a test drives the app's own UI) ------------------------------------

    def ids(self) -> list[str]:
        with self.lock:
            return [contact_id(p.seq) for p in self.people.live()]

    def find(self, raw: str) -> Person | None:
        return self.by_id.get(raw)

    def update(self, ids: list[str], fields: dict[str, Any] | None = None) -> list[str]:
        """Change contacts as their owner would in Outlook (by default: a new job title)."""
        with self.lock:
            chosen = [p for p in (self.by_id.get(i) for i in ids) if p is not None and not p.deleted]
            return [contact_id(p.seq) for p in self.people.update(chosen, fields)]

    # -- reads --------------------------------------------------------------------------------------

    async def list(self, request: Request) -> Response:
        params = request.query_params
        top, skip = _number(params.get("$top"), 10, _MAX_TOP), _number(params.get("$skip"), 0, 10**9)
        with self.lock:
            live = self.people.live()
            page = live[skip : skip + top]
            body: dict[str, Any] = {"value": [render(p) for p in page]}
            if skip + top < len(live):
                body["@odata.nextLink"] = f"{root(request)}/v1.0/me/contacts?$top={top}&$skip={skip + top}"
            return _answer(body)

    async def get(self, request: Request) -> Response:
        with self.lock:
            return _answer(render(self._live(request.path_params["contact_id"])))

    async def delta(self, request: Request) -> Response:
        """Every live contact first; a `$deltatoken` then gives what changed since, deletions as `@removed`."""
        token = request.query_params.get("$deltatoken")
        if token is not None and not token.isdigit():
            raise Refusal(400, "syncStateNotFound", "The sync state of this delta link is not valid.")
        with self.lock:
            if token is None:
                rows = [render(p) for p in self.people.live()]
            else:
                rows = [_removed(p) if p.deleted else render(p) for p in self.people.changed_since(int(token))]
            link = f"{root(request)}/v1.0/me/contacts/delta?$deltatoken={self.people.last_change}"
            return _answer({"value": rows, "@odata.deltaLink": link})

    # -- writes -------------------------------------------------------------------------------------

    async def post(self, request: Request) -> Response:
        fields = _fields(await request.body(), creating=True)
        with self.lock:
            person = self.people.create(0, [fields], by=API_WRITER)[0]
            self.by_id[contact_id(person.seq)] = person
            return _answer(render(person), 201)

    async def patch(self, request: Request) -> Response:
        fields = _fields(await request.body(), creating=False)
        with self.lock:
            person = self._live(request.path_params["contact_id"])
            _match(request, person)
            self.people.update([person], fields, by=API_WRITER)
            return _answer(render(person))

    async def remove(self, request: Request) -> Response:
        with self.lock:
            person = self._live(request.path_params["contact_id"])
            _match(request, person)
            self.people.delete([person], by=API_WRITER)
        return Response(status_code=204)

    def _live(self, raw: str) -> Person:
        person = self.by_id.get(raw)
        if person is None or person.deleted:
            raise Refusal(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return person


def render(person: Person) -> dict[str, Any]:
    key = change_key(person)
    return {
        "@odata.etag": f'W/"{key}"',
        "id": contact_id(person.seq),
        "createdDateTime": _iso(person.created_ms),
        "lastModifiedDateTime": _iso(person.modified_ms),
        "changeKey": key,
        "categories": [],
        "parentFolderId": _FOLDER,
        "displayName": person.full_name.strip(),
        "givenName": person.first,
        "surname": person.last,
        "jobTitle": person.title or None,
        "companyName": person.company or None,
        "emailAddresses": [{"name": person.full_name.strip(), "address": person.email}] if person.email else [],
        "businessPhones": [person.phone] if person.phone else [],
    }


def change_key(person: Person) -> str:
    return base64.b64encode(f"contact.{person.seq}.{person.change}".encode()).decode()


def _removed(person: Person) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.contact", "id": contact_id(person.seq), "@removed": {"reason": "deleted"}}


def _match(request: Request, person: Person) -> None:
    """`If-Match`: the contact's current etag (or `*`), else 412 ErrorIrresolvableConflict."""
    wanted = request.headers.get("if-match")
    if wanted is None or wanted.strip() == "*":
        return
    if wanted.strip().removeprefix("W/").strip('"') != change_key(person):
        message = "The change key passed in the request does not match the current change key for the item."
        raise Refusal(412, "ErrorIrresolvableConflict", message)


def _fields(raw: bytes, *, creating: bool) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refusal(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(body, dict):
        raise Refusal(400, "BadRequest", "Unable to read JSON request payload: expected an object.")
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if name in _READ_ONLY:
            raise Refusal(400, "ErrorInvalidProperty", f"The property '{name}' is read-only and cannot be set.")
        if name not in _WRITABLE:
            raise Refusal(400, "RequestBodyRead", _UNKNOWN.format(name))
        if name == "emailAddresses":
            fields["email"] = _address(value)
        elif name == "businessPhones":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise Refusal(400, "RequestBodyRead", "businessPhones must be a collection of strings.")
            fields["phone"] = value[0] if value else None
        elif name != "displayName":
            if value is not None and not isinstance(value, str):
                raise Refusal(400, "RequestBodyRead", f"Cannot convert the literal '{value}' to Edm.String.")
            target = {"givenName": "first", "surname": "last", "companyName": "company", "jobTitle": "title"}[name]
            fields[target] = value or ""
    if creating:
        fields = {"first": "", "last": "", "email": "", "phone": None, "company": "", "title": "", **fields}
    return fields


def _address(value: Any) -> str:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise Refusal(400, "RequestBodyRead", "emailAddresses must be a collection of emailAddress objects.")
    if len(value) > 3:
        raise Refusal(400, "ErrorInvalidProperty", "A contact holds at most three email addresses.")
    address = value[0].get("address", "") if value else ""
    if not isinstance(address, str):
        raise Refusal(400, "RequestBodyRead", "emailAddress.address must be a string.")
    return address


def _number(raw: str | None, default: int, cap: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > cap:
        raise Refusal(400, "BadRequest", f"Invalid value '{raw}' for a paging parameter (at most {cap}).")
    return int(raw)


def _answer(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
