"""Microsoft Graph's wire format as the simulator writes it: GUID ids, user properties, the error envelope."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.simulation import Person

__all__ = [
    "APP_ID",
    "CANONICAL",
    "CHALLENGE",
    "FIELD_PROPERTIES",
    "JSON",
    "PROPERTIES",
    "TENANT_ID",
    "THROTTLED",
    "error",
    "iso",
    "link",
    "manager_of",
    "request_ids",
    "root",
    "upn",
    "user_id",
]

TENANT_ID, APP_ID = "2f9e8d7c-6b5a-4c3d-9e1f-0a2b4c6d8e0f", "9c1e5b7a-3d2f-4a6b-8e0c-1f3a5c7e9b2d"
JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
_IDS = uuid.UUID("6f1c2d3e-4b5a-4978-8a9b-0c1d2e3f4a5b")  # namespace of the simulated user ids
CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)
THROTTLED = {
    "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{APP_ID}/{TENANT_ID}",
    "x-ms-throttle-information": "ResourceUnitLimitExceeded",
}


@functools.cache
def user_id(seq: int) -> str:
    return str(uuid.uuid5(_IDS, f"user-{seq}"))


def upn(person: Person) -> str:
    return f"{person.email.partition('@')[0]}@contoso.onmicrosoft.com"


def iso(ms: int) -> str:
    """Graph's timestamps: UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manager_of(person: Person) -> int | None:
    """The seq of a user's manager: the first user of each ten manages the other nine."""
    return None if person.seq % 10 == 0 else person.seq - person.seq % 10


PROPERTIES: dict[str, Callable[[Person], Any]] = {
    "id": lambda p: user_id(p.seq),
    "accountEnabled": lambda p: True,
    "businessPhones": lambda p: [p.phone] if p.phone else [],
    "companyName": lambda p: p.company,
    "createdDateTime": lambda p: iso(p.created_ms),
    "deletedDateTime": lambda p: None if p.deleted_ms is None else iso(p.deleted_ms),
    "displayName": lambda p: p.full_name,
    "givenName": lambda p: p.first,
    "jobTitle": lambda p: p.title,
    "mail": lambda p: p.email,
    "mailNickname": lambda p: p.email.partition("@")[0],
    "mobilePhone": lambda p: None,
    "officeLocation": lambda p: None,
    "preferredLanguage": lambda p: "en-US",
    "surname": lambda p: p.last,
    "userPrincipalName": lambda p: upn(p),
    "userType": lambda p: "Member",
}
CANONICAL = {name.lower(): name for name in PROPERTIES}  # Graph matches property names case-insensitively
FIELD_PROPERTIES = {  # the properties a change of a simulated person's field shows in
    "first": {"givenName", "displayName"},
    "last": {"surname", "displayName"},
    "email": {"mail", "mailNickname", "userPrincipalName"},
    "phone": {"businessPhones"},
    "company": {"companyName"},
    "title": {"jobTitle"},
}


def link(request: Request, path: str, query: list[tuple[str, str]]) -> str:
    """An absolute link back to this server, as Graph writes them (`$` and `,` unescaped)."""
    return f"{root(request)}{path}?{urlencode(query, safe='$,()', quote_via=quote)}"


def root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def request_ids(request: Request | None) -> dict[str, str]:
    request_id = str(uuid.uuid4())
    client = request.headers.get("client-request-id") if request is not None else None
    return {"request-id": request_id, "client-request-id": client or request_id}


def error(
    request: Request | None, now: float, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """`{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`."""
    ids = request_ids(request)
    inner = {"date": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S"), **ids}
    extra = {**(headers or {}), **({"WWW-Authenticate": CHALLENGE} if status == 401 else {})}
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers={**ids, **extra})
