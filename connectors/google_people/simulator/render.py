"""Google People API persons as the simulator writes them: resource names, etags, field items with
`metadata.source` and one primary item, empty arrays left out, and trimmed stubs of deleted contacts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from connectors.simulation import Person

__all__ = ["NOT_FOUND", "person", "person_response", "profile_id", "resource_name", "sync_entry"]

NOT_FOUND = "Requested entity was not found."
_MULTIPLIER, _OFFSET = 0x9E3779B97F4A7C15, 7_142_462_727_258_425_368  # odd: seq -> number is a bijection


def resource_name(seq: int) -> str:
    """`people/c<digits>`, from a bijection of the creation order."""
    return f"people/c{_number(seq)}"


def profile_id(who: Person) -> str | None:
    """Every sixth contact is also a Google user with a public profile (the PROFILE source)."""
    return None if who.seq % 6 else f"1{_number(who.seq) % 10**20:020d}"


def person(who: Person, fields: frozenset[str], profiles: bool = False) -> dict[str, Any]:
    """A Person with the masked fields; `profiles` (READ_SOURCE_TYPE_PROFILE) adds the PROFILE source."""
    source = {"type": "CONTACT", "id": f"{_number(who.seq):x}"}
    primary = {"primary": True, "source": source}
    record: dict[str, Any] = {"resourceName": resource_name(who.seq), "etag": _etag(who)}
    if "metadata" in fields:
        updated = {**source, "etag": "#" + _etag(who)[1:], "updateTime": _iso(who.modified_ms)}
        record["metadata"] = {"sources": [updated], "objectType": "PERSON"}
        if profiles and (profile := profile_id(who)) is not None:
            record["metadata"]["sources"].append({"type": "PROFILE", "id": profile, "etag": "#" + _etag(who)[2:]})
    if "names" in fields:
        full = who.full_name
        names = {"displayName": full, "familyName": who.last, "givenName": who.first}
        names |= {"displayNameLastFirst": f"{who.last}, {who.first}", "unstructuredName": full}
        record["names"] = [{"metadata": primary, **names}]
    if "emailAddresses" in fields:
        record["emailAddresses"] = _emails(who, source)
    if "phoneNumbers" in fields and who.phone:  # empty arrays are left out
        canonical = "+" + "".join(c for c in who.phone if c.isdigit())
        phone = {"value": who.phone, "canonicalForm": canonical, "type": "mobile", "formattedType": "Mobile"}
        record["phoneNumbers"] = [{"metadata": primary, **phone}]
    if "organizations" in fields:
        organization = {"name": who.company, "title": who.title, "type": "work", "formattedType": "Work"}
        record["organizations"] = [{"metadata": primary, **organization}]
    return record


def sync_entry(who: Person, fields: frozenset[str], profiles: bool = False) -> dict[str, Any]:
    """A person as a sync response shows it: deleted contacts as a stub with `metadata.deleted: true`."""
    if who.deleted:
        metadata = {"deleted": True, "objectType": "PERSON"}
        return {"resourceName": resource_name(who.seq), "etag": _etag(who), "metadata": metadata}
    return person(who, fields, profiles)


def person_response(name: str, who: Person | None, fields: frozenset[str]) -> dict[str, Any]:
    """One `responses` entry of `people:batchGet`."""
    if who is None or who.deleted:
        return {"httpStatusCode": 404, "requestedResourceName": name, "status": {"code": 5, "message": NOT_FOUND}}
    return {"httpStatusCode": 200, "person": person(who, fields), "requestedResourceName": name, "status": {}}


def _emails(who: Person, source: dict[str, str]) -> list[dict[str, Any]]:
    """The work address (primary); every fourth person also has a home address, listed first."""
    work = {"metadata": {"primary": True, "source": source}, "value": who.email, "type": "work"}
    emails = [{**work, "formattedType": "Work"}]
    if who.seq % 4 == 1:
        home = f"{who.first}.{who.last}.{who.seq}@home.example".lower()
        emails.insert(0, {"metadata": {"source": source}, "value": home, "type": "home", "formattedType": "Home"})
    return emails


def _number(seq: int) -> int:
    return (seq * _MULTIPLIER + _OFFSET) % 2**63


def _etag(who: Person) -> str:
    return "%" + base64.b64encode(f"{who.seq}.{who.change}".encode()).decode()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
