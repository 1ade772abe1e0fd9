"""The `changes:` executor: tokens in params or as URLs, watermarks, deletion rules, expiry and resync."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.errors import SinceExpired
from connectors.incremental import change_pages, pull_changes
from connectors.spec import ConnectorSpec

CONTACTS: dict[str, Any] = {"list": {"path": "/contacts", "records_path": "items"}}


def connector(changes: dict[str, Any], handler: Any) -> Connector:
    spec = ConnectorSpec.model_validate(
        {
            "name": "acme",
            "title": "Acme",
            "base_url": "https://api.acme.test",
            "collections": {"contacts": {**CONTACTS, "updated_at_path": "updated", "changes": changes}},
        }
    )
    return Connector(spec, transport=httpx.MockTransport(handler))


SYNC_TOKEN = {
    "path": "/contacts/sync",
    "records_path": "items",
    "initial_params": {"requestSyncToken": "true"},
    "since_param": "syncToken",
    "since_path": "nextSyncToken",
    "deleted": {"path": "metadata.deleted", "equals": True},
    "expired": {"status": [400, 410], "body_contains": "EXPIRED_SYNC_TOKEN"},
}


def sync_api(request: httpx.Request) -> httpx.Response:
    token = request.url.params.get("syncToken")
    if token is None:
        assert request.url.params["requestSyncToken"] == "true"
        return httpx.Response(200, json={"items": [{"id": "1"}, {"id": "2"}], "nextSyncToken": "t1"})
    if token == "old":
        return httpx.Response(400, json={"error": {"status": "FAILED_PRECONDITION", "details": "EXPIRED_SYNC_TOKEN"}})
    return httpx.Response(200, json={"items": [{"id": "2", "metadata": {"deleted": True}}], "nextSyncToken": "t2"})


async def test_first_pull_sends_initial_params_and_returns_the_next_token() -> None:
    async with connector(SYNC_TOKEN, sync_api) as acme:
        result = await pull_changes(acme, "contacts")
    assert [(c.kind, c.external_id) for c in result.changes] == [("upsert", "1"), ("upsert", "2")]
    assert result.since == "t1" and not result.resynced


async def test_a_later_pull_sends_the_token_and_reports_deletions() -> None:
    async with connector(SYNC_TOKEN, sync_api) as acme:
        result = await pull_changes(acme, "contacts", "t1")
    assert [(c.kind, c.external_id, c.record) for c in result.changes] == [("deleted", "2", None)]
    assert result.since == "t2"


async def test_an_expired_token_raises_since_expired_from_the_page_iterator() -> None:
    async with connector(SYNC_TOKEN, sync_api) as acme:
        with pytest.raises(SinceExpired, match="acme: the stored incremental token was refused"):
            [page async for page in change_pages(acme, "contacts", "old")]


async def test_pull_changes_falls_back_to_a_full_resync_on_an_expired_token() -> None:
    async with connector(SYNC_TOKEN, sync_api) as acme:
        result = await pull_changes(acme, "contacts", "old")
    assert result.resynced and result.since == "t1" and len(result.changes) == 2


async def test_a_400_without_the_expiry_marker_is_an_ordinary_error() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "bad field"})

    async with connector(SYNC_TOKEN, api) as acme:
        with pytest.raises(Exception, match="answered 400") as raised:
            await pull_changes(acme, "contacts", "t1")
    assert not isinstance(raised.value, SinceExpired)


DELTA_LINK = {
    "path": "/users/delta",
    "records_path": "value",
    "since_is_url": True,
    "since_path": "@odata.deltaLink",
    "paginator": {"type": "next_link", "header": None, "next_path": "@odata.nextLink"},
    "deleted": {"path": "@removed"},
}


def delta_api(request: httpx.Request) -> httpx.Response:
    if "skip" not in request.url.params and "token" not in request.url.params:
        return httpx.Response(200, json={"value": [{"id": "a"}], "@odata.nextLink": "/users/delta?skip=1"})
    if "skip" in request.url.params:
        return httpx.Response(200, json={"value": [{"id": "b"}], "@odata.deltaLink": "/users/delta?token=d1"})
    return httpx.Response(
        200,
        json={"value": [{"id": "a", "@removed": {"reason": "changed"}}], "@odata.deltaLink": "/users/delta?token=d2"},
    )


async def test_a_delta_link_is_followed_as_a_url_and_removed_means_deleted() -> None:
    async with connector(DELTA_LINK, delta_api) as graph:
        first = await pull_changes(graph, "contacts")
        later = await pull_changes(graph, "contacts", "https://api.acme.test/users/delta?token=d1")
    assert [c.external_id for c in first.changes] == ["a", "b"] and first.since == "/users/delta?token=d1"
    assert [(c.kind, c.external_id) for c in later.changes] == [("deleted", "a")]


WATERMARK = {
    "path": "/persons",
    "records_path": "data",
    "since_param": "updated_since",
    "since_from_records": "update_time",
    "deleted": {"path": "is_deleted", "equals": True},
}


def watermark_api(request: httpx.Request) -> httpx.Response:
    since = request.url.params.get("updated_since", "")
    rows = [
        {"id": 1, "update_time": "2026-01-02T00:00:00Z"},
        {"id": 2, "update_time": "2026-01-03T00:00:00Z"},
        {"id": 1, "update_time": "2026-01-04T00:00:00Z", "is_deleted": True},
    ]
    return httpx.Response(200, json={"data": [r for r in rows if r["update_time"] > since]})


async def test_the_watermark_is_the_highest_record_value_and_the_latest_change_per_record_wins() -> None:
    async with connector(WATERMARK, watermark_api) as pipedrive:
        result = await pull_changes(pipedrive, "contacts")
        empty = await pull_changes(pipedrive, "contacts", result.since)
    assert [(c.kind, c.external_id) for c in result.changes] == [("upsert", "2"), ("deleted", "1")]
    assert result.since == "2026-01-04T00:00:00Z" and empty.changes == [] and empty.since == result.since


def test_a_changes_spec_needs_exactly_one_way_to_find_the_next_token() -> None:
    with pytest.raises(ValueError, match="exactly one of since_path or since_from_records"):
        connector({"path": "/x", "since_param": "s"}, sync_api)


def test_a_key_holding_dots_is_found_whole() -> None:
    from connectors.paths import lookup

    body = {"@odata.nextLink": "u", "a": {"@odata.deltaLink": "d", "b": [{"c.d": 1}]}}
    assert (lookup(body, "@odata.nextLink"), lookup(body, "a.@odata.deltaLink"), lookup(body, "a.b.0.c.d")) == (
        "u",
        "d",
        1,
    )


OR_FILTERS = {
    "path": "/items",
    "records_path": "data",
    "since_filters": [{"param": "created_after"}, {"param": "updated_after", "from_records": "updated"}],
    "since_from_records": "created",
    "deletions": {
        "path": "/log",
        "records_path": "data",
        "since_param": "since",
        "id_path": "item",
        "since_from_records": "at",
    },
}


def or_api(request: httpx.Request) -> httpx.Response:
    """Items 1-3 (3 created after t2, 1 edited at t4; `updated` null until the first edit); 2 deleted at t5."""
    rows = [
        {"id": 1, "created": "t1", "updated": "t4"},
        {"id": 3, "created": "t3", "updated": None},
    ]
    params, seen = request.url.params, []
    if request.url.path == "/log":
        seen = [{"item": 2, "at": "t5"}] if params["since"] < "t5" else []
    elif "created_after" in params:
        seen = [r for r in rows if str(r["created"]) > params["created_after"]]
    elif "updated_after" in params:
        seen = [r for r in rows if r["updated"] is not None and str(r["updated"]) > params["updated_after"]]
    else:
        seen = [*rows, {"id": 2, "created": "t2", "updated": None}]
    return httpx.Response(200, json={"data": seen})


async def test_or_filters_and_a_deletions_log_give_creates_updates_and_deletes_with_one_token() -> None:
    async with connector(OR_FILTERS, or_api) as app:
        result = await pull_changes(app, "contacts", "t2")
        again = await pull_changes(app, "contacts", result.since)
    assert [(c.kind, c.external_id) for c in result.changes] == [("upsert", "3"), ("upsert", "1"), ("deleted", "2")]
    assert result.since == "t5" and again.changes == [] and again.since == "t5"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({**OR_FILTERS, "since_param": "s"}, "exactly one of since_param, since_is_url: true or since_filters"),
        ({**OR_FILTERS, "since_from_records": None, "since_path": "next"}, "need since_from_records"),
    ],
)
def test_or_filters_take_the_place_of_since_param_and_need_a_record_watermark(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        connector(changes, or_api)
