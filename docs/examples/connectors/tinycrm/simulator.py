"""A simulated TinyCRM: the example app of docs/writing-a-connector.md, on inlet's `SimulatorBase`.

TinyCRM's API is small, and its incremental reading is the awkward kind:

    GET /v1/contacts             cursor pages (`cursor`, `limit` <= 100), `{"data": [...], "next_cursor": ...}`;
                                 `created_after` / `updated_after` (ISO 8601, strictly later) filter it;
                                 `updated_at` is null until a contact's first edit
    GET /v1/contacts/{id}        one contact, or 404
    GET /v1/activity             the audit log, same paging: `type` (e.g. contact.deleted) and `since` filter it;
                                 a deleted contact is gone from /v1/contacts and shows only here

Auth is `Authorization: Bearer <token>`; errors are `{"error": {"code": ..., "message": ...}}`.
`SimulatorBase` adds the rest: seeded contacts, `create`/`update`/`delete`, injected faults, `/_sim/*`.

    make_simulator(records=50).app     # an ASGI app; serve it with uvicorn, or pass it to httpx.ASGITransport
    inlet connectors simulate tinycrm --port 8430   # served on 127.0.0.1 (with INLET_CONNECTORS_PATH set)
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from connectors.simulation import Person, Refusal, SimulatorBase, serve, with_knobs

__all__ = ["TinyCrmSimulator", "main", "make_simulator"]

MAX_LIMIT = 100


class TinyCrmSimulator(SimulatorBase):
    """Contacts with ids `ct_1`, `ct_2`, ... and an audit log of what changed after seeding."""

    connector = "tinycrm"
    tokens_expire = False  # the incremental token is a timestamp the app always accepts

    def __init__(self, records: int = 100, seed: int | str = 0, *, token: str = "tinycrm-token") -> None:
        self.log: list[dict[str, Any]] = []
        super().__init__(records, seed, token=token)

    # -- what changes at the source also goes to the audit log ------------------------------------

    def create(self, n: Any, *, by: str | None = None) -> list[str]:
        return self._logged("contact.created", super().create(n, by=by))

    def update(self, ids: Any, fields: Any = None, *, by: str | None = None) -> list[str]:
        return self._logged("contact.updated", super().update(ids, fields, by=by))

    def delete(self, ids: Any, *, by: str | None = None) -> list[str]:
        return self._logged("contact.deleted", super().delete(ids, by=by))

    def _logged(self, kind: str, ids: list[str]) -> list[str]:
        with self.lock:
            for external_id in ids:
                person = self.find(external_id)
                assert person is not None
                at = _iso(person.modified_ms)
                self.log.append({"id": f"act_{len(self.log) + 1}", "type": kind, "contact_id": external_id, "at": at})
        return ids

    # -- the API ---------------------------------------------------------------------------------

    def external_id(self, person: Person) -> str:
        return f"ct_{person.seq + 1}"

    def api_routes(self) -> list[BaseRoute]:
        return [
            self.route("/v1/contacts", self._contacts, "list"),
            self.route("/v1/contacts/{id}", self._contact, "get"),
            self.route("/v1/activity", self._activity, "activity"),
        ]

    def unauthenticated(self, request: Request, missing: bool) -> Refusal:
        return Refusal(401, "unauthorized", "missing token" if missing else "invalid token")

    def refusal(self, request: Request | None, refused: Refusal) -> Response:
        return self.answer({"error": {"code": refused.code, "message": refused.message}}, refused.status, request)

    def throttled(self, request: Request | None, limit: str, wait: float) -> Response:
        body = {"error": {"code": "rate_limited", "message": "too many requests"}}
        return self.answer(body, 429, request, {"Retry-After": f"{wait:g}"})

    async def _contacts(self, request: Request) -> Response:
        created_after = _instant(request, "created_after")
        updated_after = _instant(request, "updated_after")
        with self.lock:
            chosen = [
                p
                for p in self.people.live()
                if (created_after is None or p.created_ms > created_after)
                and (updated_after is None or ((u := _updated_ms(p)) is not None and u > updated_after))
            ]
            return self._page(request, chosen, self._render)

    async def _contact(self, request: Request) -> Response:
        with self.lock:
            person = self.find(request.path_params["id"])
            if person is None or person.deleted:
                raise Refusal(404, "not_found", "no such contact")
            return self.answer(self._render(person), request=request)

    async def _activity(self, request: Request) -> Response:
        since, kind = _instant(request, "since"), request.query_params.get("type")
        with self.lock:
            entries = [
                e for e in self.log if (kind is None or e["type"] == kind) and (since is None or _ms(e["at"]) > since)
            ]
            return self._page(request, entries, dict)

    def _page(self, request: Request, items: list[Any], render: Callable[[Any], dict[str, Any]]) -> Response:
        limit = int(request.query_params.get("limit", "50"))
        if not 1 <= limit <= MAX_LIMIT:
            raise Refusal(400, "invalid_limit", f"limit must be 1..{MAX_LIMIT}")
        cursor = request.query_params.get("cursor")
        start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
        end = start + limit
        after = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
        if cursor and after and self.take_repeat():
            after = cursor  # a looping API hands out the same cursor again
        return self.answer({"data": [render(i) for i in items[start:end]], "next_cursor": after}, request=request)

    def _render(self, person: Person) -> dict[str, Any]:
        updated = _updated_ms(person)
        return {
            "id": self.external_id(person),
            "name": person.full_name,
            "email": person.email,
            "phone": person.phone,
            "company": person.company,
            "title": person.title,
            "created_at": _iso(person.created_ms),
            "updated_at": None if updated is None else _iso(updated),
        }


make_simulator = TinyCrmSimulator  # the contract suite's factory: make_simulator(records, seed)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator on 127.0.0.1 (`inlet connectors simulate tinycrm`); `--help` lists the knobs."""
    serve(*with_knobs(TinyCrmSimulator, argv, "Serve a simulated TinyCRM."))


def _updated_ms(person: Person) -> int | None:
    """When the contact was last edited; None until its first edit."""
    return None if person.change == person.created_change else person.modified_ms


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _instant(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return _ms(value)
    except ValueError:
        raise Refusal(400, "invalid_timestamp", f"{name} must be an ISO 8601 timestamp") from None
