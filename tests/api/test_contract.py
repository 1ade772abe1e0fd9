"""The API's contract, endpoint by endpoint, over real HTTP: status codes, bodies, problem details, paging, scopes,
connect sessions confined to their tenant, the audit log and rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlmodel import Session

from inlet.api import create_server
from inlet.service import create_api_key, initialise, open_installation
from inlet.store import ConnectSession, OutboxEvent, QuarantinedRecord, utcnow
from tests.api.conftest import ApiWorld, demo_schema, make_settings, store_raw_records
from tests.support.serving import serve_in_thread

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def acme(world: ApiWorld) -> list[str]:
    """acme's HubSpot connection (made through the API) and its stored records' ids."""
    response = world.call("POST", "/tenants/acme/connections", json=world.hubspot(), scope="write")
    assert response.status_code == 201, response.text
    return [str(r["id"]) for r in store_raw_records(world, "acme", "acme-hubspot")]


def problem(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"urn:inlet:problem:{kind}" and body["status"] == status
    return str(body.get("detail", ""))


def test_openapi_is_served_under_api(world: ApiWorld) -> None:
    with world.client(None) as http:
        document = http.get("/openapi.json").json()
    assert document["servers"] == [{"url": "/api"}]
    assert {"/tenants", "/tenants/{tenant}/connections", "/tenants/{tenant}/mappings/preview"} <= set(document["paths"])


def test_a_call_without_a_key_is_401_and_with_an_unknown_key_too(world: ApiWorld) -> None:
    with world.client(None) as http:
        assert "Bearer" in problem(http.get("/tenants"), 401, "unauthenticated")
    with world.client(token="ik_00000000_not-a-key") as http:
        response = http.get("/tenants")
    problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_read_key_cannot_write_and_a_write_key_cannot_administer(world: ApiWorld) -> None:
    assert "'write'" in problem(world.call("POST", "/tenants", json={"id": "x1"}, scope="read"), 403, "forbidden")
    problem(world.call("GET", "/api-keys", scope="write"), 403, "forbidden")
    assert world.call("GET", "/tenants", scope="read").status_code == 200


def test_tenants_are_created_read_and_conflict_when_repeated(world: ApiWorld) -> None:
    created = world.call("POST", "/tenants", json={"id": "initech", "name": "Initech"}, scope="write")
    assert created.status_code == 201 and created.json()["name"] == "Initech"
    assert world.call("GET", "/tenants/initech", scope="read").json()["id"] == "initech"
    problem(world.call("POST", "/tenants", json={"id": "initech"}, scope="write"), 409, "conflict")
    problem(world.call("GET", "/tenants/nobody", scope="read"), 404, "not-found")
    problem(world.call("POST", "/tenants", json={"id": "Bad Id"}, scope="write"), 422, "invalid-request")


def test_every_list_pages_with_limit_and_cursor(world: ApiWorld) -> None:
    for name in ("page-a", "page-b", "page-c"):
        world.call("POST", "/tenants", json={"id": name}, scope="write")
    seen, cursor = [], None
    while True:
        body = world.call("GET", "/tenants", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(body["items"]) <= 2
        seen += [t["id"] for t in body["items"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert seen == sorted(seen) and {"page-a", "page-b", "page-c", "acme"} <= set(seen) and len(seen) == len(set(seen))
    problem(world.call("GET", "/tenants", params={"cursor": "not-ours"}), 422, "invalid-input")
    problem(world.call("GET", "/tenants", params={"limit": 0}), 422, "invalid-request")


def test_the_catalogue_gives_each_connectors_auth_form_as_json_schema(world: ApiWorld) -> None:
    hubspot = world.call("GET", "/connectors/hubspot", scope="read").json()
    form = hubspot["auth_schema"]["properties"]
    assert form["credentials"]["required"] == ["token"] and form["credentials"]["properties"]["token"]["writeOnly"]
    assert hubspot["oauth_grants"] == ["authorization_code"] and "webhooks" in hubspot["supports"]
    zendesk = world.call("GET", "/connectors/zendesk", scope="read").json()["auth_schema"]["properties"]
    assert zendesk["parameters"]["required"] == ["base_url"]
    assert set(zendesk["credentials"]["required"]) == {"username", "api_token"}
    names = [c["name"] for c in world.call("GET", "/connectors", params={"limit": 3}).json()["items"]]
    assert len(names) == 3 and names == sorted(names)


def test_a_connection_is_saved_after_its_credentials_are_checked(world: ApiWorld, acme: list[str]) -> None:
    body = world.call("GET", "/tenants/acme/connections/acme-hubspot", scope="read").json()
    assert body["credential_names"] == ["token"] and body["auth"] == "credentials"
    assert world.sim.connection("")[1]["token"].get_secret_value() not in str(body)
    listing = world.call("GET", "/tenants/acme/connections", scope="read").json()
    assert [c["id"] for c in listing["items"]] == ["acme-hubspot"]


def test_credentials_the_app_refuses_save_nothing(world: ApiWorld) -> None:
    body = world.hubspot(id="globex-bad", credentials={"token": "wrong-token-123"})
    detail = problem(
        world.call("POST", "/tenants/globex/connections", json=body, scope="write"), 422, "credentials-refused"
    )
    assert "refused these credentials" in detail and "wrong-token-123" not in detail
    problem(world.call("GET", "/tenants/globex/connections/globex-bad"), 404, "not-found")


def test_check_false_saves_without_asking_the_app(world: ApiWorld) -> None:
    before = world.sim.stats()["requests"]
    body = world.hubspot(id="globex-unchecked", credentials={"token": "not-checked"}, check=False)
    assert world.call("POST", "/tenants/globex/connections", json=body, scope="write").status_code == 201
    assert world.sim.stats()["requests"] == before


def test_a_connection_is_deleted_with_what_was_kept_for_it(world: ApiWorld) -> None:
    body = world.hubspot(id="globex-gone", check=False)
    assert world.call("POST", "/tenants/globex/connections", json=body, scope="write").status_code == 201
    assert world.call("DELETE", "/tenants/globex/connections/globex-gone", scope="write").status_code == 204
    problem(world.call("DELETE", "/tenants/globex/connections/globex-gone", scope="write"), 404, "not-found")
    problem(world.call("DELETE", "/tenants/globex/connections/acme-hubspot", scope="write"), 404, "not-found")


def test_status_lists_the_tenants_connections(world: ApiWorld, acme: list[str]) -> None:
    body = world.call("GET", "/tenants/acme/status", scope="read").json()
    row = body["connections"][0]
    assert (row["connection"], row["auth"], row["last_full_import"]) == ("acme-hubspot", "credentials", "never")
    assert body["history"] is False  # no Prefect server in this test


def test_starting_an_import_without_a_prefect_server_says_how(world: ApiWorld, acme: list[str]) -> None:
    detail = problem(
        world.call("POST", "/tenants/acme/connections/acme-hubspot/imports", scope="write"), 503, "unavailable"
    )
    assert "inlet up" in detail


def test_starting_an_import_creates_a_run_of_the_full_import_deployment(
    world: ApiWorld, acme: list[str], prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    async def deploy() -> UUID:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("full-import")
            entrypoint = "flows/full_import.py:x"
            return await client.create_deployment(flow_id=flow_id, name="full-import", entrypoint=entrypoint)

    async def undeploy(deployment_id: UUID) -> None:
        async with get_client() as client:
            await client.delete_deployment(deployment_id)

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    deployment_id = asyncio.run(deploy())
    try:
        assert_the_import_starts_a_run(world)
    finally:  # the session's Prefect server is shared: a deployment left behind changes later tests' world
        asyncio.run(undeploy(deployment_id))


def assert_the_import_starts_a_run(world: ApiWorld) -> None:
    from prefect.client.orchestration import get_client

    response = world.call("POST", "/tenants/acme/connections/acme-hubspot/imports", json={"restart": True})
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["deployment"] == "full-import/full-import" and run["state"] == "SCHEDULED"

    async def parameters() -> dict[str, object]:
        async with get_client() as client:
            return dict((await client.read_flow_run(run["flow_run_id"])).parameters)

    assert asyncio.run(parameters())["job"] == {
        "tenant": "acme",
        "connection": "acme-hubspot",
        "data_source": "users",
        "restart": True,
        "force_delete": False,
    }


def test_mappings_show_each_layer_and_a_valid_change_is_saved(world: ApiWorld, acme: list[str]) -> None:
    shown = world.call("GET", "/tenants/acme/mappings", params={"connection": "acme-hubspot"}).json()
    levels = {f["target"]: f["level"] for f in shown["fields"]}
    assert levels["email"] == "default" and "email" in shown["udm_fields"]
    saved = world.call("PATCH", "/tenants/acme/mappings", json={"set": {"title": "{{ title | upper }}"}})
    assert saved.status_code == 200 and saved.json()["stored"] == {"tenant": {"title": "{{ title | upper }}"}}
    fields = {f["target"]: f for f in saved.json()["fields"]}
    assert fields["title"]["level"] == "tenant" and fields["title"]["expression"] == "{{ title | upper }}"
    assert world.call("DELETE", "/tenants/acme/mappings").json() == {"reset": True}
    assert world.call("DELETE", "/tenants/acme/mappings").json() == {"reset": False}


def test_an_invalid_mapping_is_refused_naming_the_field_and_nothing_is_saved(world: ApiWorld, acme: list[str]) -> None:
    bad = {"set": {"title": "{{ title | upper "}}
    assert "title" in problem(world.call("PATCH", "/tenants/acme/mappings", json=bad), 422, "invalid-mapping")
    verdict = world.call("POST", "/tenants/acme/mappings/validate", json=bad, scope="read").json()
    assert verdict["valid"] is False and "title" in verdict["error"]
    assert world.call("POST", "/tenants/acme/mappings/validate", json={"set": {"title": "{{ email }}"}}).json() == {
        "valid": True,
        "error": None,
    }
    assert world.call("GET", "/tenants/acme/mappings").json()["stored"] == {}


def test_preview_maps_the_tenants_stored_records_and_counts_what_would_be_quarantined(
    world: ApiWorld, acme: list[str]
) -> None:
    demo_schema(world.inst.settings.home, phone={"type": "string"})
    try:
        body = {"connection": "acme-hubspot", "set": {"title": "{{ title | upper }}"}, "limit": 3}
        preview = world.call("POST", "/tenants/acme/mappings/preview", json=body, scope="read").json()
        fixed = {**body, "set": {"phone": "{{ phone | default('none', true) }}"}}
        after_fix = world.call("POST", "/tenants/acme/mappings/preview", json=fixed, scope="read").json()
    finally:
        (world.inst.settings.home / "schemas" / "users.yaml").unlink()
    assert [r["external_id"] for r in preview["records"]] == sorted(acme)[:3]
    mapped = [r["mapped"] for r in preview["records"] if r["mapped"]]
    assert mapped and all(m["title"] == m["title"].upper() for m in mapped)
    phoneless = sum(1 for r in world.sim.people.all if r.phone is None)
    assert preview["checked"] == len(acme) and preview["would_quarantine"] == preview["quarantined_now"] == phoneless
    assert after_fix["would_quarantine"] == 0 and after_fix["quarantined_now"] == phoneless
    assert world.call("GET", "/tenants/acme/mappings").json()["stored"] == {}


def test_quarantine_is_listed_per_tenant_and_dropped_one_by_one(world: ApiWorld, acme: list[str]) -> None:
    with Session(world.inst.engine) as session:
        rows = [
            QuarantinedRecord(
                connection_id="acme-hubspot", data_source="users", external_id=i, raw="{}", error="x", run_id="r"
            )
            for i in ("q1", "q2", "q3")
        ]
        session.add_all(rows)
        session.commit()
        ids = [row.id for row in rows]
    page = world.call("GET", "/tenants/acme/quarantine", params={"limit": 2}, scope="read").json()
    assert [q["external_id"] for q in page["items"]] == ["q1", "q2"] and page["next_cursor"]
    assert world.call("GET", "/tenants/globex/quarantine").json()["items"] == []
    problem(world.call("DELETE", f"/tenants/globex/quarantine/{ids[0]}", scope="write"), 404, "not-found")
    assert world.call("DELETE", f"/tenants/acme/quarantine/{ids[0]}", scope="write").status_code == 204
    problem(world.call("DELETE", f"/tenants/acme/quarantine/{ids[0]}", scope="write"), 404, "not-found")
    retry = world.call("POST", "/tenants/acme/quarantine/retry", json={"connection": "acme-hubspot"}, scope="write")
    assert retry.status_code in (202, 503)  # 202 when a Prefect server with the deployment answers


def test_dead_letters_are_listed_and_replayed(world: ApiWorld, acme: list[str]) -> None:
    with Session(world.inst.engine) as session:
        for n in range(3):
            session.add(
                OutboxEvent(
                    event_id=f"evt_{n}",
                    tenant_id="acme",
                    connection_id="acme-hubspot",
                    data_source="users",
                    external_id=str(n),
                    type="created",
                    idempotency_key=f"k{n}",
                    version=1,
                    status="dead",
                    last_error="422 from the app",
                    dead_at=utcnow(),
                )
            )
        session.commit()
    dead = world.call("GET", "/deliveries", params={"status": "dead", "tenant": "acme"}, scope="read").json()
    assert len(dead["items"]) == 3 and dead["items"][0]["last_error"] == "422 from the app"
    status = world.call("GET", "/deliveries/status", scope="read").json()
    assert sum(row["dead"] for row in status) >= 3
    problem(world.call("POST", "/deliveries/replay", json={}, scope="write"), 422, "invalid-input")
    assert world.call("POST", "/deliveries/replay", json={"tenant": "acme"}, scope="write").json() == {"replayed": 3}
    assert world.call("GET", "/deliveries", params={"status": "dead", "tenant": "acme"}).json()["items"] == []


def test_api_keys_are_shown_once_listed_without_the_key_and_revoked(world: ApiWorld) -> None:
    created = world.call("POST", "/api-keys", json={"name": "ci", "scopes": ["read"]}).json()
    key = created.pop("key")
    assert key.startswith(f"ik_{created['id']}_")
    listed = world.call("GET", "/api-keys", params={"limit": 100}).json()["items"]
    assert created["id"] in [k["id"] for k in listed] and key not in str(listed)
    with world.client(token=key) as http:
        assert http.get("/tenants").status_code == 200
        assert world.call("DELETE", f"/api-keys/{created['id']}").status_code == 204
        problem(http.get("/tenants"), 401, "unauthenticated")


def test_every_change_is_in_the_audit_log_with_who_and_how_it_ended(world: ApiWorld) -> None:
    world.call("POST", "/tenants", json={"id": "audited"}, scope="write")
    world.call("POST", "/tenants", json={"id": "audited"}, scope="read")
    entries = world.call("GET", "/audit", params={"limit": 5}).json()["items"]
    assert [(e["action"], e["status"]) for e in entries[:2]] == [("POST /api/tenants", 403), ("POST /api/tenants", 201)]
    assert entries[0]["actor"].startswith("api_key:") and entries[0]["actor"] != entries[1]["actor"]
    assert not any(e["action"].startswith("GET") for e in entries)


@pytest.fixture
def session_token(world: ApiWorld, acme: list[str]) -> str:
    body = {"connectors": ["hubspot"], "parameters": {"hubspot": {"base_url": world.sim_url}}}
    created = world.call("POST", "/tenants/acme/connect-sessions", json=body, scope="write")
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["url"] == f"http://127.0.0.1:8430/pages/{session['token']}/connect"
    return str(session["token"])


def test_a_connect_session_reads_its_own_tenant_and_nothing_else(world: ApiWorld, session_token: str) -> None:
    with world.client(token=session_token) as http:
        assert [c["id"] for c in http.get("/tenants/acme/connections").json()["items"]] == ["acme-hubspot"]
        assert http.get("/tenants/acme/mappings").status_code == 200
        problem(http.get("/tenants/globex/connections"), 403, "forbidden")
        problem(http.get("/tenants/globex/mappings"), 403, "forbidden")
        problem(http.get("/tenants"), 403, "forbidden")
        problem(http.post("/tenants/acme/connect-sessions", json={"connectors": ["hubspot"]}), 403, "forbidden")
        problem(http.get("/deliveries"), 403, "forbidden")


def test_a_connect_session_connects_only_its_allowed_connectors(world: ApiWorld, session_token: str) -> None:
    with world.client(token=session_token) as http:
        zendesk = {"app": "zendesk", "parameters": {"base_url": world.sim_url}, "credentials": {"username": "u"}}
        problem(http.post("/tenants/acme/connections", json=zendesk), 403, "forbidden")
        own = {"app": "hubspot", "id": "acme-hs2", "parameters": {"base_url": "http://elsewhere.invalid"}}
        good = {**own, "credentials": {"token": world.sim.connection("")[1]["token"].get_secret_value()}}
        created = http.post("/tenants/acme/connections", json=good)  # the session's base_url wins over the caller's
    assert created.status_code == 201, created.text
    assert created.json()["parameters"]["base_url"] == world.sim_url


def test_an_expired_session_is_refused(world: ApiWorld, session_token: str) -> None:
    with Session(world.inst.engine) as session:
        for row in session.query(ConnectSession).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
            session.add(row)
        session.commit()
    with world.client(token=session_token) as http:
        problem(http.get("/tenants/acme/connections"), 401, "unauthenticated")


def test_creating_sessions_is_rate_limited_per_key(world: ApiWorld, acme: list[str]) -> None:
    key = create_api_key(world.inst, "burst", ["write"])[1]  # a fresh key: its own budget (5 a minute here)
    with world.client(token=key) as http:
        answers = [http.post("/tenants/acme/connect-sessions", json={"connectors": ["hubspot"]}) for _ in range(11)]
    limited = [a for a in answers if a.status_code == 429]
    assert all(a.status_code == 201 for a in answers[:5]) and limited  # 11 calls span at most two windows
    problem(limited[0], 429, "rate-limited")
    assert 0 < int(limited[0].headers["retry-after"]) <= 60


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second installation that allows 3 failed logins a minute per client address."""
    settings = make_settings(tmp_path_factory.mktemp("strict") / "home", failed_logins_per_minute=3)
    initialise(settings)
    with serve_in_thread(create_server(open_installation(settings), lambda t, c: None)) as url:
        yield url


def test_guessing_keys_is_rate_limited_per_client_address(strict_server: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=strict_server + "/api", headers={"Authorization": "Bearer ik_guess"}) as http:
        statuses = [http.get("/tenants").status_code for _ in range(8)]
    assert statuses[:3] == [401, 401, 401] and 429 in statuses


def test_credentials_never_reach_the_logs_the_audit_or_an_answer(
    world: ApiWorld, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "pat-na1-should-never-show-4d1f"
    caplog.set_level("DEBUG")
    body = world.hubspot(id="globex-secret", credentials={"token": secret})
    refused = world.call("POST", "/tenants/globex/connections", json=body, scope="write")
    unchecked = world.call("POST", "/tenants/globex/connections", json={**body, "check": False}, scope="write")
    shown = world.call("GET", "/tenants/globex/connections/globex-secret")
    audit = world.call("GET", "/audit", params={"tenant": "globex", "limit": 10})
    assert (refused.status_code, unchecked.status_code, shown.status_code) == (422, 201, 200)
    for text in (caplog.text, refused.text, unchecked.text, shown.text, audit.text):
        assert secret not in text
