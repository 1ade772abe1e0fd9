"""A HubSpot simulator's live contacts as a client lists them: what an end-to-end test compares the app with."""

from __future__ import annotations

import httpx

__all__ = ["hubspot_emails"]


def hubspot_emails(simulator: str, token: str) -> dict[str, str]:
    """The simulator's live contacts, id -> email, every page followed by its `paging.next.link`."""
    found: dict[str, str] = {}
    url: str | None = f"{simulator}/crm/v3/objects/contacts?limit=100&properties=email"
    while url:
        page = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        found |= {r["id"]: r["properties"]["email"] for r in page["results"]}
        url = page.get("paging", {}).get("next", {}).get("link")
    return found
