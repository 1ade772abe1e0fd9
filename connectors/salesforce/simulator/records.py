"""Salesforce records as the simulator stores and writes them: fields and their types, 18-character ids with
their case checksum, `...000+0000` datetimes, `attributes`, nested relationships and compound addresses."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from connectors.simulation import EPOCH_MS, Person, Refusal

__all__ = [
    "FIELDS",
    "FIRST_NUMBER",
    "PREFIX",
    "RELATIONS",
    "canonical",
    "kind_of",
    "mailing_address",
    "parse_time",
    "person_fields",
    "record_number",
    "render",
    "salesforce_id",
    "second",
    "sf_time",
    "short_id",
    "special_users",
]

_COMMON = {
    "Id": "id", "FirstName": "string", "LastName": "string", "Name": "string", "Email": "string", "Phone": "string",
    "Title": "string", "CreatedDate": "datetime", "LastModifiedDate": "datetime", "SystemModstamp": "datetime",
}  # fmt: skip
FIELDS: dict[str, dict[str, str]] = {  # field -> type, per sObject
    "Contact": {
        **_COMMON,
        "AccountId": "id",
        "IsDeleted": "boolean",
        "MailingAddress": "address",
        "LastModifiedById": "id",
    },
    "User": {**_COMMON, "Username": "string", "CompanyName": "string", "IsActive": "boolean", "UserType": "string"},
}
RELATIONS = {"Contact": {"Account": {"Id": "id", "Name": "string"}}}
PREFIX = {"Contact": "003", "User": "005", "Account": "001"}
FIRST_NUMBER = 1_000_000  # record number of the first person; ids encode it in base 62
_SPECIAL_NUMBER = 62**8  # automated and guest users, beyond any person
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_CITIES = (("London", "GB", "EC1A 1BB"), ("Paris", "FR", "75001"), ("Berlin", "DE", "10115"), ("Austin", "US", "73301"))
_NO_COLUMN = (
    "No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to append the "
    "'__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
)


def canonical(sobject: str, name: str) -> str:
    """A field name as Salesforce spells it (SOQL is case-insensitive), or INVALID_FIELD."""
    head, _, tail = name.partition(".")
    if not tail:
        found = next((f for f in FIELDS[sobject] if f.lower() == head.lower()), None)
    else:
        relation = next((r for r in RELATIONS.get(sobject, {}) if r.lower() == head.lower()), None)
        if relation is None:
            raise Refusal(400, "INVALID_FIELD", f"Didn't understand relationship '{head}' in field path.", fields=[])
        field = next((f for f in RELATIONS[sobject][relation] if f.lower() == tail.lower()), None)
        found = f"{relation}.{field}" if field else None
    if found is None:
        raise Refusal(400, "INVALID_FIELD", _NO_COLUMN.format(name, sobject), fields=[])
    return found


def kind_of(sobject: str, field: str) -> str:
    head, _, tail = field.partition(".")
    return RELATIONS[sobject][head][tail] if tail else FIELDS[sobject][field]


def person_fields(person: Person, record_id: str) -> dict[str, Any]:
    return {
        "Id": record_id,
        "FirstName": person.first,
        "LastName": person.last,
        "Name": person.full_name,
        "Email": person.email,
        "Phone": person.phone,
        "Title": person.title,
        "CreatedDate": second(person.created_ms),
        "LastModifiedDate": second(person.modified_ms),
        "SystemModstamp": second(person.modified_ms),
    }


def mailing_address(person: Person) -> dict[str, Any] | None:
    """A compound field: every seventh contact has none."""
    if person.seq % 7 == 6:
        return None
    city, country, code = _CITIES[person.seq % len(_CITIES)]
    street = f"{person.seq % 200 + 1} High Street"
    fields = {"street": street, "city": city, "state": None, "postalCode": code, "country": country}
    return {**fields, "geocodeAccuracy": None, "latitude": None, "longitude": None}


def special_users() -> list[dict[str, Any]]:
    """Users that are not people, left out by `UserType = 'Standard'`."""
    return [
        {
            "Id": salesforce_id("User", _SPECIAL_NUMBER + i),
            **dict.fromkeys(("FirstName", "Phone", "Title", "CompanyName")),
            "LastName": name,
            "Name": name,
            "Email": f"noreply{i}@example.org",
            "Username": f"{kind.lower()}{i}@00dro0000000001.example",
            "IsActive": True,
            "UserType": kind,
            **dict.fromkeys(("CreatedDate", "LastModifiedDate", "SystemModstamp"), EPOCH_MS),
        }
        for i, (name, kind) in enumerate((("Automated Process", "AutomatedProcess"), ("Site Guest User", "Guest")))
    ]


def render(row: dict[str, Any], sobject: str, fields: tuple[str, ...], version: str) -> dict[str, Any]:
    """A record as the API writes it: `attributes` first, relationship fields nested, nulls kept."""
    record: dict[str, Any] = {"attributes": _attributes(sobject, row["Id"], version)}
    for field in fields:
        head, _, tail = field.partition(".")
        if not tail:
            record[field] = sf_time(row[field]) if FIELDS[sobject][field] == "datetime" else row[field]
        elif row[head] is None:
            record[head] = None
        else:
            nested = record.setdefault(head, {"attributes": _attributes(head, row[head]["Id"], version)})
            nested[tail] = row[head][tail]
    return record


def _attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{record_id}"}


def salesforce_id(sobject: str, number: int) -> str:
    """An 18-character id: key prefix, pod `RO`, `0`, nine base-62 digits, then the 3-letter case checksum."""
    digits = ""
    for _ in range(9):
        number, digit = divmod(number, 62)
        digits = _BASE62[digit] + digits
    short = f"{PREFIX.get(sobject, '01g')}RO0{digits}"
    return short + _checksum(short)


def record_number(short: str) -> int:
    """The number a 15-character id encodes."""
    return sum(_BASE62.index(c) * 62**i for i, c in enumerate(reversed(short[6:])))


def _checksum(short: str) -> str:
    """Per 5-character chunk, a bit per uppercase letter, as an index into A..Z0..5."""
    return "".join(
        _CHECKSUM[sum(1 << i for i, c in enumerate(short[k : k + 5]) if "A" <= c <= "Z")] for k in (0, 5, 10)
    )


def short_id(raw: str) -> str | None:
    """The case-sensitive 15-character id from a 15-character one, or an 18-character one in any case."""
    if len(raw) == 15:
        return raw if all(c in _BASE62 for c in raw) else None
    if len(raw) != 18 or any(c.upper() not in _CHECKSUM for c in raw[15:]) or any(c not in _BASE62 for c in raw):
        return None
    chars = []
    for k in range(3):
        mask = _CHECKSUM.index(raw[15 + k].upper())
        chars += [c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(raw[5 * k : 5 * k + 5])]
    short = "".join(chars)
    return short if _checksum(short) == raw[15:].upper() else None


def parse_time(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment is not None and moment.tzinfo is not None else None


def second(ms: int) -> int:
    return ms - ms % 1000


def sf_time(ms: int) -> str:
    """`2024-05-01T12:00:03.000+0000`: UTC, milliseconds always zero."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(ms // 1000))
