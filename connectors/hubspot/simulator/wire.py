"""HubSpot's wire format as the simulator writes it: ids, dates, property values, error envelopes, parameters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.responses import Response

from connectors.simulation import Person, Refusal, json_response

__all__ = [
    "DATES",
    "DEFAULT_PROPERTIES",
    "FIELD_OF",
    "MAX_LIMIT",
    "VALUES",
    "company_id",
    "cursor",
    "error",
    "invalid",
    "is_id",
    "iso",
    "json_object",
    "names",
    "object_id",
    "page_size",
    "rate_limited",
    "shown",
]

DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
MAX_LIMIT = 100
DATES = frozenset({"createdate", "lastmodifieddate"})
_FIRST_ID, _ID_STEP = 10_000_000_000, 7
_EPOCH = datetime(1970, 1, 1)  # naive, so isoformat() has no offset and we can append "Z"
VALUES: dict[str, Callable[[Person], int | str | None]] = {  # typed property values, for search
    "createdate": lambda p: p.created_ms,
    "email": lambda p: p.email,
    "firstname": lambda p: p.first,
    "hs_object_id": lambda p: object_id(p.seq),
    "lastmodifieddate": lambda p: p.modified_ms,
    "lastname": lambda p: p.last,
    "phone": lambda p: p.phone,
    "company": lambda p: p.company,
    "jobtitle": lambda p: p.title,
    "hs_merged_object_ids": lambda p: ";".join(str(object_id(s)) for s in p.merged_from) or None,
}
FIELD_OF = {"email": "email", "firstname": "first", "lastname": "last", "phone": "phone", "company": "company"}
FIELD_OF["jobtitle"] = "title"  # HubSpot property → the simulated person's field


def object_id(seq: int) -> int:
    """An 11-digit id, ascending with creation order, not evenly spaced."""
    return _FIRST_ID + seq * _ID_STEP + (seq * 3) % _ID_STEP


def company_id(company: str) -> str:
    """The id of the company record a contact is associated with."""
    return str(9_000_000_000 + sum(ord(c) * 31**i for i, c in enumerate(company)) % 1_000_000)


def iso(ms: int) -> str:
    """Epoch milliseconds as HubSpot writes them: `2024-04-30T09:12:44.117Z`."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def epoch_ms(text: str) -> int:
    """An ISO-8601 time as epoch milliseconds (ValueError when it is not one)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when.replace(tzinfo=None) - (when.utcoffset() or timedelta()) - _EPOCH) // timedelta(milliseconds=1)


def shown(name: str, value: int | str | None) -> str | None:
    """A property value as the API shows it: always a string (or null)."""
    return iso(value) if name in DATES and isinstance(value, int) else None if value is None else str(value)


def is_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def names(
    params: QueryParams, parameter: str = "properties", default: tuple[str, ...] = DEFAULT_PROPERTIES
) -> list[str]:
    """Requested properties (comma lists, possibly repeated), unknown ones dropped; else the default set."""
    requested = [name.strip() for value in params.getlist(parameter) for name in value.split(",")]
    return sorted({n for n in requested if n in VALUES}) if requested else list(default)


def page_size(raw: Any, cap: int, capped: bool) -> int:
    if raw is None:
        return 10
    if not is_id(str(raw)) or int(raw) < 1:
        raise invalid(f"limit must be a positive integer, got {raw!r}")
    if int(raw) > cap and not capped:
        raise invalid(f"limit may not exceed {cap}, got {raw}")
    return min(int(raw), cap)


def cursor(after: Any) -> int:
    if after is None:
        return 0
    if not is_id(str(after)):
        raise invalid(f"after {after!r} is not a cursor this endpoint returned")
    return int(after)


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    return body


def invalid(message: str, **extra: Any) -> Refusal:
    """A request the real API would answer with 400 VALIDATION_ERROR."""
    return Refusal(400, "VALIDATION_ERROR", message, **extra)


def error(status: int, message: str, category: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """The error envelope: status, message, correlationId, category, and optional context, errors, links."""
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), **extra}
    return json_response({**body, "category": category}, status, headers)


def rate_limited(policy: str, headers: dict[str, str]) -> Response:
    window = {"DAILY": "daily", "SECONDLY": "secondly"}.get(policy, "ten_secondly_rolling")
    body = {
        "status": "error",
        "message": f"You have reached your {window} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }
    return json_response(body, 429, headers)  # HubSpot sends the X-HubSpot-RateLimit-* headers on 429s too
