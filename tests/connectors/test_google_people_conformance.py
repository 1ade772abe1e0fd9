"""The Google People simulator against the facts of api-specs/google-people.md it serves beyond listing and
sync (connectors/google_people/CONFORMANCE.md): sources, `people/me` only, scopes, the project quota, and
token ages and propagation delays driven by the simulated clock."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.google_people.simulator import DEFAULT_TOKEN, GooglePeopleSimulator
from tests.support.oauth import asgi_client, token_with_scope

BASE = "https://people.googleapis.com/v1/"
FIELDS = "names,emailAddresses,metadata"
DAY = 86_400


def client(sim: GooglePeopleSimulator) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE, headers=headers)


async def connections(c: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await c.get("people/me/connections", params={"personFields": FIELDS, **params})


async def test_the_profile_source_adds_the_profile_of_contacts_who_have_one() -> None:
    async with client(GooglePeopleSimulator(12)) as c:
        plain = (await connections(c)).json()["connections"]
        both = (await connections(c, sources=["READ_SOURCE_TYPE_CONTACT", "READ_SOURCE_TYPE_PROFILE"])).json()
    kinds = [[s["type"] for s in p["metadata"]["sources"]] for p in both["connections"]]
    assert all(len(p["metadata"]["sources"]) == 1 for p in plain)
    assert ["CONTACT", "PROFILE"] in kinds and ["CONTACT"] in kinds


async def test_only_the_users_own_contacts_can_be_listed() -> None:
    async with client(GooglePeopleSimulator(2)) as c:
        answer = await c.get("people/c123/connections", params={"personFields": FIELDS})
    assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT"


async def test_a_token_without_a_contacts_scope_is_403_scope_insufficient() -> None:
    sim = GooglePeopleSimulator(2)
    async with asgi_client(sim) as http:
        narrow = await token_with_scope(http, sim, "openid email")
        granted = await token_with_scope(http, sim, "https://www.googleapis.com/auth/contacts.readonly")
        url = f"/v1/people/me/connections?personFields={FIELDS}"
        refused = await http.get(url, headers={"Authorization": f"Bearer {narrow}"})
        allowed = await http.get(url, headers={"Authorization": f"Bearer {granted}"})
    error = refused.json()["error"]
    assert refused.status_code == 403 and error["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert allowed.status_code == 200


async def test_the_project_quota_is_a_429_of_its_own() -> None:
    sim = GooglePeopleSimulator(2, project_read_quota_per_minute=2, read_quota_per_minute=None)
    async with client(sim) as c:
        statuses = [(await connections(c)).status_code for _ in range(3)]
        sim.advance(60)
        later = await connections(c)
    assert statuses == [200, 200, 429] and later.status_code == 200


@pytest.mark.parametrize(("days", "status"), [(6, 200), (8, 400)])
async def test_a_sync_token_lives_seven_days(days: int, status: int) -> None:
    sim = GooglePeopleSimulator(3)
    async with client(sim) as c:
        token = (await connections(c, requestSyncToken="true")).json()["nextSyncToken"]
        sim.advance(days * DAY)
        answer = await connections(c, requestSyncToken="true", syncToken=token)
    assert answer.status_code == status


async def test_a_change_reaches_sync_responses_after_the_propagation_delay() -> None:
    sim = GooglePeopleSimulator(3, sync_delay_seconds=300)
    async with client(sim) as c:
        token = (await connections(c, requestSyncToken="true")).json()["nextSyncToken"]
        [changed] = sim.update(sim.ids()[:1])
        early = (await connections(c, requestSyncToken="true", syncToken=token)).json()
        sim.advance(301)
        late = (await connections(c, requestSyncToken="true", syncToken=token)).json()
    assert "connections" not in early and [p["resourceName"] for p in late["connections"]] == [changed]


async def test_a_project_without_the_api_enabled_is_403_service_disabled() -> None:
    async with client(GooglePeopleSimulator(2, service_disabled=True)) as c:
        answer = await connections(c)
    error = answer.json()["error"]
    assert answer.status_code == 403 and error["status"] == "PERMISSION_DENIED"
    assert error["details"][0]["reason"] == "SERVICE_DISABLED"
