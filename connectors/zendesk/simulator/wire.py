"""Zendesk's users as the simulator writes them: integer ids, roles, cursors, `{"error", "description"}` bodies."""

from __future__ import annotations

import base64
import re
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request

from connectors.simulation import Person, Refusal

__all__ = [
    "DELETED_NAME",
    "PERMISSION_SET",
    "external_id_of",
    "integer",
    "invalid",
    "iso",
    "link",
    "list_cursor",
    "list_position",
    "organization",
    "organization_id",
    "permission_set_of",
    "role_of",
    "seq_of",
    "user_id",
]

DELETED_NAME = "Permanently Deleted User"
PERMISSION_SET = 360_000_123_456  # the custom agent role some agents have
_FIRST_ID = 372_000_000_000
_ID_STEP = 17
_LIST_CURSOR = re.compile(r"h\$(\d+)~\d+")


def invalid(error: str, description: str, status: int = 400) -> Refusal:
    """A request Zendesk answers with a 4xx `{"error": ..., "description": ...}`."""
    return Refusal(status, error, description)


def user_id(seq: int) -> int:
    return _FIRST_ID + seq * _ID_STEP


def seq_of(user: int) -> int | None:
    offset = user - _FIRST_ID
    return offset // _ID_STEP if offset >= 0 and offset % _ID_STEP == 0 else None


def role_of(person: Person) -> str:
    """Every 25th user is an admin, every 5th an agent, the others end-users."""
    return "admin" if person.seq % 25 == 0 else "agent" if person.seq % 5 == 0 else "end-user"


def permission_set_of(person: Person) -> int | None:
    """Half the agents have the custom agent role `PERMISSION_SET`."""
    return PERMISSION_SET if role_of(person) == "agent" and person.seq % 10 == 5 else None


def external_id_of(person: Person) -> str | None:
    """Every third user was imported from a CRM and keeps its id there."""
    return f"crm-{person.seq}" if person.seq % 3 == 0 else None


def organization_id(person: Person) -> int:
    return 360_000_000 + zlib.crc32(person.company.encode()) % 1_000_000


def organization(person: Person, request: Request) -> dict[str, Any]:
    """The organization record a sideload (`include=organizations`) lists."""
    org = organization_id(person)
    root = f"{request.url.scheme}://{request.url.netloc}"
    return {"id": org, "url": f"{root}/api/v2/organizations/{org}.json", "name": person.company, "tags": []}


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def integer(params: QueryParams, name: str, default: int, *, low: int = 1, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        limit = f"between {low} and {high}" if high < sys.maxsize else f"at least {low}"
        raise invalid("InvalidPaginationParameter", f"{name} must be an integer {limit}")  # body [unverified]
    return int(raw)


def list_cursor(person: Person) -> str:
    """`h$<id>~<epoch seconds>`, base64url without padding: the shape of Zendesk's list cursors."""
    raw = f"h${user_id(person.seq)}~{person.modified_ms // 1000}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def list_position(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    match = _LIST_CURSOR.fullmatch(raw)
    seq = seq_of(int(match[1])) if match else None
    if seq is None:
        raise invalid("InvalidPaginationParameter", f"page cursor {cursor!r} is invalid")  # body [unverified]
    return seq


def link(request: Request, size: int) -> Callable[[str, str], str]:
    def to(name: str, cursor: str) -> str:
        return str(request.url.replace(query=urlencode({name: cursor, "page[size]": size})))

    return to
