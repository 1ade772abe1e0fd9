"""The Zendesk connector (YAML plus webhook hooks) and its simulator, against `api-specs/zendesk.md`."""

from __future__ import annotations

import base64
import itertools
from typing import Any, Literal

import httpx
import orjson
import pytest

from connectors import registry
from connectors.base import Connector
from connectors.errors import WebhookRejected
from connectors.incremental import pull_changes
from connectors.spec import RateLimit
from connectors.webhooks import WebhookEvent, WebhookRequest
from connectors.zendesk.hooks import check_signature, parse_webhook, sign, verify_webhook
from connectors.zendesk.simulator import ADMIN_EMAIL, DEFAULT_TOKEN, ZendeskSimulator
from mappings import RecordMapper, effective_mapping

BASE = "https://acme.zendesk.com"
USERS = "/api/v2/users.json"
EXPORT = "/api/v2/incremental/users/cursor.json"


class Clock:
    """A settable clock for the simulator's rate-limit windows."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulator(records: int = 250, **options: Any) -> ZendeskSimulator:
    return ZendeskSimulator(records, seed=3, **options)


async def call(sim: ZendeskSimulator, path: str, **params: Any) -> httpx.Response:
    return await call_as(sim, httpx.BasicAuth(f"{ADMIN_EMAIL}/token", DEFAULT_TOKEN), path, **params)


async def call_as(sim: ZendeskSimulator, auth: httpx.Auth, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE) as http:
        return await http.get(path, params=params, auth=auth)


def open_zendesk(sim: ZendeskSimulator) -> Connector:
    parameters, credentials = sim.connection(BASE)
    transport = httpx.ASGITransport(app=sim.app)
    return registry.open_connector("zendesk", parameters=parameters, credentials=credentials, transport=transport)


def decoded(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


# -- list users ------------------------------------------------------------------------------------


async def test_a_cursor_page_carries_meta_and_links() -> None:
    sim = simulator(5)
    body = (await call(sim, USERS, **{"page[size]": 2})).json()
    assert [str(u["id"]) for u in body["users"]] == sim.ids()[:2] and body["meta"]["has_more"] is True
    assert decoded(body["meta"]["after_cursor"]).startswith(f"h${sim.ids()[1]}~")
    assert "page%5Bafter%5D=" in body["links"]["next"] and "page%5Bsize%5D=2" in body["links"]["next"]


async def test_the_last_cursor_page_says_has_more_false_but_keeps_its_cursor() -> None:
    sim = simulator(3)
    body = (await call(sim, USERS, **{"page[size]": 100})).json()
    assert len(body["users"]) == 3 and body["meta"]["has_more"] is False
    assert body["meta"]["after_cursor"] and body["links"]["next"]


async def test_a_page_size_over_100_is_refused() -> None:
    response = await call(simulator(3), USERS, **{"page[size]": 101})
    assert response.status_code == 400 and response.json()["error"] == "InvalidPaginationParameter"


async def test_a_cursor_the_api_never_issued_is_refused() -> None:
    response = await call(simulator(3), USERS, **{"page[size]": 2, "page[after]": "bm9wZQ"})
    assert response.status_code == 400 and "bm9wZQ" in response.json()["description"]


async def test_offset_pages_count_and_link_the_next_page() -> None:
    sim = simulator(250)
    second, third = (await call(sim, USERS, page=2)).json(), (await call(sim, USERS, page=3)).json()
    assert len(second["users"]) == 100 and second["count"] == 250 and "page=3" in second["next_page"]
    assert len(third["users"]) == 50 and third["next_page"] is None and "page=2" in third["previous_page"]


async def test_offset_paging_past_page_100_is_a_400() -> None:
    response = await call(simulator(3), USERS, page=101, per_page=1)
    assert response.status_code == 400 and "cursor pagination" in response.json()["description"]


async def test_a_repeated_token_hands_back_the_cursor_it_was_asked_with() -> None:
    sim = simulator(6)
    after = (await call(sim, USERS, **{"page[size]": 2})).json()["meta"]["after_cursor"]
    sim.inject(repeat_token=1)
    body = (await call(sim, USERS, **{"page[size]": 2, "page[after]": after})).json()
    assert body["meta"]["after_cursor"] == after


# -- show users, deletions -------------------------------------------------------------------------


async def test_show_wraps_the_user_and_an_unknown_id_is_record_not_found() -> None:
    sim = simulator(3)
    shown = await call(sim, f"/api/v2/users/{sim.ids()[1]}.json")
    missing = await call(sim, "/api/v2/users/12345.json")
    assert shown.json()["user"]["id"] == int(sim.ids()[1]) and shown.json()["user"]["active"] is True
    assert missing.status_code == 404 and missing.json() == {"error": "RecordNotFound", "description": "Not found"}


async def test_show_many_returns_the_existing_users() -> None:
    sim = simulator(4)
    body = (await call(sim, "/api/v2/users/show_many.json", ids=f"{sim.ids()[0]},{sim.ids()[3]},99")).json()
    assert [str(u["id"]) for u in body["users"]] == [sim.ids()[0], sim.ids()[3]]


async def test_a_soft_deleted_user_stays_readable_inactive_and_is_listed_as_deleted() -> None:
    sim = simulator(4)
    gone = sim.soft_delete([sim.ids()[1]])[0]
    shown = (await call(sim, f"/api/v2/users/{gone}")).json()["user"]
    listed = (await call(sim, USERS, **{"page[size]": 100})).json()["users"]
    deleted = (await call(sim, "/api/v2/deleted_users.json", **{"page[size]": 100})).json()["deleted_users"]
    assert shown["active"] is False and gone not in {str(u["id"]) for u in listed}
    assert [(str(u["id"]), u["name"] != "Permanently Deleted User") for u in deleted] == [(gone, True)]
    assert (await call(sim, f"/api/v2/deleted_users/{gone}.json")).json()["deleted_user"]["active"] is False


async def test_a_permanently_deleted_user_is_gone_and_scrubbed() -> None:
    sim = simulator(4)
    gone = sim.delete([sim.ids()[2]])[0]
    deleted = (await call(sim, "/api/v2/deleted_users.json", **{"page[size]": 100})).json()["deleted_users"]
    assert (await call(sim, f"/api/v2/users/{gone}.json")).status_code == 404
    assert (await call(sim, f"/api/v2/deleted_users/{gone}.json")).status_code == 404
    assert [(u["name"], u["email"], u["active"]) for u in deleted] == [("Permanently Deleted User", None, False)]


# -- auth, faults, rate limits ---------------------------------------------------------------------


async def test_wrong_credentials_are_told_they_could_not_be_authenticated() -> None:
    response = await call_as(simulator(3), httpx.BasicAuth(f"{ADMIN_EMAIL}/token", "nope"), USERS)
    assert response.status_code == 401 and response.json() == {"error": "Couldn't authenticate you"}


async def test_an_oauth_bearer_token_is_accepted() -> None:
    sim = simulator(3, token="oauth-access-token")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=BASE) as http:
        response = await http.get(USERS, headers={"Authorization": "Bearer oauth-access-token"})
    assert response.status_code == 200 and len(response.json()["users"]) == 3


async def test_an_injected_429_is_plain_text_with_retry_after() -> None:
    sim = simulator(3)
    sim.inject(status_429=1, retry_after=7)
    response = await call(sim, USERS)
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.headers["content-type"].startswith("text/plain") and "per minute exceeded" in response.text


@pytest.mark.parametrize(("fault", "status"), [("status_500", 500), ("malformed", 200)])
async def test_server_errors_and_truncated_bodies_can_be_injected(fault: str, status: int) -> None:
    sim = simulator(3)
    sim.inject(**{fault: 1})
    response = await call(sim, USERS)
    assert response.status_code == status and (fault == "status_500" or response.content.endswith(b'"https://'))


async def test_every_answer_carries_the_rate_limit_headers_and_the_account_limit_is_enforced() -> None:
    sim = simulator(3, rate_limit=2, clock=Clock())
    first, second, third = [await call(sim, USERS) for _ in range(3)]
    assert (first.headers["X-Rate-Limit"], first.headers["X-Rate-Limit-Remaining"]) == ("2", "1")
    assert second.status_code == 200 and third.status_code == 429 and third.headers["Retry-After"] == "60"


# -- incremental export ----------------------------------------------------------------------------


async def test_the_export_starts_at_start_time_and_ends_with_end_of_stream() -> None:
    sim = simulator(3)
    first = (await call(sim, EXPORT, start_time=0, per_page=2)).json()
    last = (await call(sim, EXPORT, cursor=first["after_cursor"], per_page=2)).json()
    assert len(first["users"]) == 2 and first["end_of_stream"] is False and first["before_url"] is None
    assert "cursor=" in first["after_url"] and base64.b64decode(first["after_cursor"]).decode().endswith("|")
    assert len(last["users"]) == 1 and last["end_of_stream"] is True and last["after_cursor"]


async def test_the_export_leaves_out_the_last_minute_of_changes() -> None:
    sim = simulator(3, export_lag_seconds=60)
    created = sim.create(2)
    body = (await call(sim, EXPORT, start_time=0)).json()
    assert len(body["users"]) == 3 and not {str(u["id"]) for u in body["users"]} & set(created)
    assert body["end_of_stream"] is True


async def test_the_export_allows_10_requests_a_minute() -> None:
    clock = Clock()
    sim = simulator(3, clock=clock)
    answers = [(await call(sim, EXPORT, start_time=0)).status_code for _ in range(11)]
    refused = await call(sim, EXPORT, start_time=0)
    clock.now = 60.0
    assert answers == [200] * 10 + [429] and refused.headers["Retry-After"] == "60"
    assert "incremental export" in refused.text and (await call(sim, EXPORT, start_time=0)).status_code == 200


async def test_the_export_is_for_admins_only() -> None:
    response = await call(simulator(3, role="agent"), EXPORT, start_time=0)
    assert response.status_code == 403 and response.json()["error"] == "Forbidden"


async def test_a_start_time_in_the_future_is_refused() -> None:
    response = await call(simulator(3), EXPORT, start_time=4_000_000_000)
    assert response.status_code == 400 and "start_time" in response.json()["description"]


async def test_expired_cursors_are_a_400_naming_them_and_later_cursors_still_work() -> None:
    sim = simulator(3)
    old = (await call(sim, EXPORT, start_time=0)).json()["after_cursor"]
    sim.inject(expire_tokens=True)
    refused = await call(sim, EXPORT, cursor=old)
    new = (await call(sim, EXPORT, start_time=0)).json()["after_cursor"]
    assert refused.status_code == 400 and old in refused.json()["description"]
    assert (await call(sim, EXPORT, cursor=new)).status_code == 200


async def test_a_repeated_export_token_hands_back_the_cursor_it_was_asked_with() -> None:
    sim = simulator(6)
    cursor = (await call(sim, EXPORT, start_time=0, per_page=2)).json()["after_cursor"]
    sim.inject(repeat_token=1)
    assert (await call(sim, EXPORT, cursor=cursor, per_page=2)).json()["after_cursor"] == cursor


async def test_the_time_based_export_repeats_its_boundary_second() -> None:
    sim = simulator(4)
    first = (await call(sim, "/api/v2/incremental/users.json", start_time=0)).json()
    again = (await call(sim, "/api/v2/incremental/users.json", start_time=first["end_time"])).json()
    assert first["count"] == 4 and first["end_of_stream"] is True
    assert f"start_time={first['end_time']}" in first["next_page"]
    assert [u["id"] for u in again["users"]] == [first["users"][-1]["id"]]


# -- the connector ---------------------------------------------------------------------------------


async def test_lists_every_user_in_pages_of_100() -> None:
    sim = simulator(250)
    async with open_zendesk(sim) as zendesk:
        pages = [page async for page in zendesk.pages("users")]
    assert [len(page.records) for page in pages] == [100, 100, 50]
    assert "page%5Bsize%5D=100" in pages[0].url and sim.stats()["list"] == 3


async def test_get_returns_a_soft_deleted_user_inactive_and_none_for_a_purged_one() -> None:
    sim = simulator(5)
    soft, purged = sim.soft_delete([sim.ids()[0]])[0], sim.delete([sim.ids()[1]])[0]
    async with open_zendesk(sim) as zendesk:
        record = await zendesk.get("users", soft)
        assert record is not None and record["active"] is False
        assert await zendesk.get("users", purged) is None


async def test_soft_and_permanent_deletions_come_as_deleted_changes() -> None:
    sim = simulator(20)
    async with open_zendesk(sim) as zendesk:
        first = await pull_changes(zendesk, "users")
        deleted = sim.soft_delete(1) + sim.delete(1)
        later = await pull_changes(zendesk, "users", first.since)
    assert sorted((c.kind, c.external_id, c.record) for c in later.changes) == [
        ("deleted", i, None) for i in sorted(deleted)
    ]


async def test_the_export_limit_is_waited_out_for_its_retry_after(waits: list[float]) -> None:
    ticks = itertools.count(0, 30)
    sim = simulator(1500, export_rate_limit=1, clock=lambda: float(next(ticks)))
    async with open_zendesk(sim) as zendesk:
        result = await pull_changes(zendesk, "users")
    assert waits == [30.0] and len(result.changes) == 1500 and sim.stats()["export"] == 3


async def test_an_injected_429_on_the_export_is_waited_out(waits: list[float]) -> None:
    sim = simulator(10)
    sim.inject(status_429=1, retry_after=2)
    async with open_zendesk(sim) as zendesk:
        result = await pull_changes(zendesk, "users")
    assert waits == [2.0] and len(result.changes) == 10


def test_the_request_budget_comes_from_the_yaml() -> None:
    spec, _ = registry.load("zendesk")
    connector = registry.open_connector(
        "zendesk", parameters={"base_url": BASE}, credentials=simulator(1).connection(BASE)[1]
    )
    assert spec.rate_limit == RateLimit(requests=180, per_seconds=60)
    assert connector.budget is not None and connector.budget.requests == 180


async def test_a_simulated_user_maps_to_the_users_udm() -> None:
    sim = simulator(3)
    user = (await call(sim, f"/api/v2/users/{sim.ids()[0]}.json")).json()["user"]
    spec, _ = registry.load("zendesk")
    mapper = RecordMapper(
        data_source="users",
        udm_fields=spec.collections["users"].udm_fields,
        app_mapping=effective_mapping("users"),
        origin="zendesk",
    )
    mapped = mapper.map(user)
    assert mapped["email"] == user["email"] and mapped["company"] == user["user_fields"]["company"]
    assert mapped["active"] is True and mapped["fullName"] == user["name"]


# -- webhooks --------------------------------------------------------------------------------------

SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="  # the spec's vector
STAMP = "2024-05-01T12:00:00Z"
STAMPED_AT = 1_714_564_800.0
BODY = b'{"type":"zen:event-type:user.created","id":"e1"}'
SIGNATURE = "Hm9Zme/0rlCV6qbVvCrOUXOPcHMTNHgrp/17LlOOFoQ="


def webhook(body: bytes = BODY, signature: str | None = SIGNATURE, stamp: str | None = STAMP) -> WebhookRequest:
    headers = {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    present = {name: value for name, value in headers.items() if value is not None}
    return WebhookRequest("POST", "https://inlet.example/webhooks/zendesk", httpx.Headers(present), body)


def test_the_spec_vector_is_signed_and_verified() -> None:
    assert sign(SECRET, STAMP, BODY) == SIGNATURE
    verify_webhook(webhook(), SECRET, STAMPED_AT + 10)


@pytest.mark.parametrize(
    ("request_", "secret", "now", "reason"),
    [
        (webhook(body=BODY.replace(b"e1", b"e2")), SECRET, STAMPED_AT, "does not match"),
        (webhook(), "another-secret", STAMPED_AT, "does not match"),
        (webhook(), SECRET, STAMPED_AT + 301, "replay"),
        (webhook(), SECRET, STAMPED_AT - 301, "replay"),
        (webhook(signature=None), SECRET, STAMPED_AT, "lacks"),
        (webhook(stamp=None), SECRET, STAMPED_AT, "lacks"),
    ],
    ids=["tampered-body", "wrong-secret", "stale", "from-the-future", "no-signature", "no-timestamp"],
)
def test_a_bad_webhook_is_rejected(request_: WebhookRequest, secret: str, now: float, reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        verify_webhook(request_, secret, now)


def test_the_replay_window_is_configurable() -> None:
    check_signature(webhook(), SECRET, STAMPED_AT + 400, window=600)
    with pytest.raises(WebhookRejected, match="replay"):
        check_signature(webhook(), SECRET, STAMPED_AT + 400, window=300)


def event(kind: str, **extra: Any) -> WebhookRequest:
    body = {"type": f"zen:event-type:{kind}", "id": "9c7e", "time": "2024-05-01T12:00:03Z", "subject": "zen:user:48213"}
    return webhook(body=orjson.dumps({**body, "detail": {"id": "48213"}, **extra}))


@pytest.mark.parametrize(
    ("request_", "kind"),
    [
        (event("user.created"), "upsert"),
        (event("user.name_changed"), "upsert"),
        (event("user.deleted"), "deleted"),
        (event("user.active_changed", event={"current": False, "previous": True}), "deleted"),
        (event("user.active_changed", event={"current": True, "previous": False}), "upsert"),
    ],
)
def test_user_events_parse_to_changes(request_: WebhookRequest, kind: Literal["upsert", "deleted"]) -> None:
    assert parse_webhook(request_) == [WebhookEvent(kind, "48213", "2024-05-01T12:00:03Z", "9c7e")]


def test_events_about_other_things_announce_no_user_change() -> None:
    assert parse_webhook(event("organization.created")) == [] and parse_webhook(webhook(body=b"not json")) == []


def test_the_webhook_hooks_are_registered() -> None:
    _, hooks = registry.load("zendesk")
    assert hooks.verify_webhook is verify_webhook and hooks.parse_webhook is parse_webhook
