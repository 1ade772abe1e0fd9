"""Pipedrive's persons as the simulator writes them (v1 and v2 shapes, their times), and the parameters it reads."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from connectors.simulation import Person, Refusal, decode_token, encode_token

__all__ = [
    "COMPANY_ID",
    "CUSTOM_FIELD",
    "FIELD_KEYS",
    "FILTERS",
    "INCLUDE_FIELDS",
    "OWNER",
    "Key",
    "decode_cursor",
    "encode_cursor",
    "ids",
    "invalid",
    "iso_ms",
    "limit",
    "offset",
    "org_id",
    "pagination",
    "rfc3339",
    "rfc3339_seconds",
    "sort",
    "v1",
    "v1_seconds",
    "v1_time",
    "v2",
]

COMPANY_ID = 123456
OWNER = {"id": 18, "name": "Owner Name", "email": "owner@example.com"}
CUSTOM_FIELD = "d4de1c1518b4531717c676029a45911c340390a6"  # custom fields are keyed by 40-hex hashes
SOURCE_FIELD = "9a1c7e3b5d2f4a6c8e0b1d3f5a7c9e2b4d6f8a0c"  # a second custom field: the person's lead source
_SOURCES = ("web", "referral", "event")
_MAX_LIMIT, _DEFAULT_LIMIT = 500, 100
FILTERS: dict[int, Callable[[Person], bool]] = {  # the account's saved filters: 1 everyone, 2 with a phone
    1: lambda p: True,
    2: lambda p: p.phone is not None,
}
INCLUDE_FIELDS = ("next_activity_id", "last_activity_id", "open_deals_count", "done_activities_count")
FIELD_KEYS = {"first": "first_name", "last": "last_name", "email": "email", "phone": "phone", "title": "job_title"}
FIELD_KEYS["company"] = "org_id"  # the person's field → Pipedrive's field key (changelog, webhooks)
Key = tuple[int, int]  # (sort value in epoch seconds, or 0 for `id`; person id)


def invalid(message: str) -> Refusal:
    """A request Pipedrive answers with 400 and the `success: false` envelope."""
    return Refusal(400, "invalid", message)


def org_id(company: str) -> int:
    return zlib.crc32(company.encode()) % 1000 + 1


def custom_fields(person: Person) -> dict[str, Any]:
    return {CUSTOM_FIELD: _SOURCES[person.seq % len(_SOURCES)], SOURCE_FIELD: None if person.seq % 2 else "import"}


def v2(person: Person, custom: set[str] | None = None, include: tuple[str, ...] = ()) -> dict[str, Any]:
    """A v2 person: RFC 3339 times, plain ids, `emails`/`phones`, `is_deleted`, nested `custom_fields`."""
    fields = {k: v for k, v in custom_fields(person).items() if custom is None or k in custom}
    record = {
        "id": person.seq + 1,
        "name": person.full_name,
        "first_name": person.first,
        "last_name": person.last,
        "owner_id": OWNER["id"],
        "org_id": org_id(person.company),
        "picture_id": None,
        "add_time": rfc3339(person.created_ms),
        "update_time": rfc3339(person.modified_ms),
        "visible_to": 3,
        "label_ids": [],
        "is_deleted": person.deleted,
        "emails": [{"label": "work", "value": person.email, "primary": True}],
        "phones": [{"label": "work", "value": person.phone, "primary": True}] if person.phone else [],
        "job_title": person.title,
        "custom_fields": fields,
    }
    return record | {name: None if name.endswith("_id") else 0 for name in include}


def v1(person: Person) -> dict[str, Any]:
    """A v1 person: `YYYY-MM-DD HH:MM:SS` times, owner and org objects, `active_flag`, flat custom fields."""
    owner = {**OWNER, "has_pic": 0, "pic_hash": None, "active_flag": True, "value": OWNER["id"]}
    org = {"name": person.company, "owner_id": OWNER["id"], "active_flag": True, "value": org_id(person.company)}
    phone = (
        {"label": "work", "value": person.phone, "primary": True} if person.phone else {"value": "", "primary": True}
    )
    return {
        "id": person.seq + 1,
        "company_id": COMPANY_ID,
        "owner_id": owner,
        "org_id": org,
        "name": person.full_name,
        "first_name": person.first,
        "last_name": person.last,
        "first_char": person.first[0].lower(),
        "email": [{"label": "work", "value": person.email, "primary": True}],
        "phone": [phone],  # a person without a phone still has one empty primary entry
        "add_time": v1_time(person.created_ms),
        "update_time": v1_time(person.modified_ms),
        "active_flag": not person.deleted,
        "visible_to": "3",
        "label_ids": [],
        "job_title": person.title,
        "org_name": person.company,
        "owner_name": OWNER["name"],
        **custom_fields(person),
    }


def encode_cursor(field: str, key: Key) -> str:
    """An opaque marker of the next page's first item: base64url JSON, like `eyJmaWVsZCI6ImlkIiwiaWQiOjEwMH0`."""
    marker: dict[str, Any] = {"field": field, "id": key[1]}
    if field != "id":
        marker["value"] = rfc3339(key[0] * 1000)
    return encode_token(marker)


def decode_cursor(cursor: str | None, field: str) -> Key | None:
    if cursor is None:
        return None
    try:
        marker = decode_token(cursor)
        issued_for = marker["field"]
        if issued_for != field:
            raise invalid("The cursor was issued for another sort_by; keep the other parameters while paging")
        value = 0 if field == "id" else rfc3339_seconds(marker["value"])
        return (value or 0, int(marker["id"]))
    except (KeyError, TypeError, ValueError):
        raise invalid("Invalid cursor") from None


def limit(raw: str | None, *, over: Literal["reject", "cap"], cap: int = _MAX_LIMIT) -> int:
    if raw is None:
        return _DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise invalid("Validation failed: limit: Parameter 'limit' must be a positive integer")
    if int(raw) > cap and over == "reject":
        raise invalid(f"Validation failed: limit: Parameter 'limit' must be less than or equal to {cap}")
    return min(int(raw), cap)


def offset(raw: str | None) -> int:
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit():
        raise invalid("Validation failed: start: Parameter 'start' must be a non-negative integer")
    return int(raw)


def sort(field: str, direction: str) -> tuple[str, bool]:
    if field not in ("id", "update_time", "add_time"):
        raise invalid("Validation failed: sort_by: must be one of id, update_time, add_time")
    if direction not in ("asc", "desc"):
        raise invalid("Validation failed: sort_direction: must be one of asc, desc")
    return field, direction == "desc"


def ids(raw: str | None) -> set[int] | None:
    if raw is None:
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if len(parts) > 100 or not all(part.isascii() and part.isdigit() for part in parts):
        raise invalid("Validation failed: ids: at most 100 comma-separated integers")
    return {int(part) for part in parts}


def rfc3339_seconds(raw: str | None, *, up: bool = False) -> int | None:
    """Epoch seconds of an RFC 3339 time; `up` rounds a fraction up (update times have whole seconds)."""
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(f"Validation failed: {raw!r} is not an RFC 3339 date-time") from None
    if when.tzinfo is None:
        raise invalid(f"Validation failed: {raw!r} has no time zone (RFC 3339 needs Z or an offset)")
    seconds = when.timestamp()
    return int(seconds) + (1 if up and seconds != int(seconds) else 0)


def v1_seconds(raw: str | None, name: str = "since_timestamp") -> int:
    if raw is None:
        raise invalid(f"{name} is required (YYYY-MM-DD HH:MM:SS, UTC)")
    try:
        return int(datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise invalid(f"{name} {raw!r} is not YYYY-MM-DD HH:MM:SS") from None


def pagination(start: int, page_limit: int, more: bool, following: int) -> dict[str, Any]:
    shown: dict[str, Any] = {"start": start, "limit": page_limit, "more_items_in_collection": more}
    if more:
        shown["next_start"] = following
    return shown


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
