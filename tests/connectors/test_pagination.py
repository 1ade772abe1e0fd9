"""Paginators and stop rules: each builds the next request from a real request and response, or ends the list."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from connectors.pagination import (
    Cursor,
    Keyset,
    NextLink,
    Offset,
    PageNumber,
    PageView,
    Paginator,
    SinglePage,
    StopRules,
)

URL = "https://api.example.com/v1/users"


def request(url: str = URL, **params: str) -> httpx.Request:
    return httpx.Request("GET", url, params=params or None)


def response(body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers, request=request())


def view(body: Any = None, records: list[dict[str, Any]] | None = None, seen: int | None = None) -> PageView:
    records = [{"id": 1}] if records is None else records
    return PageView(body=body, records=records, seen=len(records) if seen is None else seen)


def follow(paginator: Any, body: Any, headers: dict[str, str] | None = None, sent: httpx.Request | None = None) -> Any:
    """The next request for a page holding `body`, or None."""
    return paginator.next_request(sent or request(), response(body, headers), view(body))


# -- cursor ----------------------------------------------------------------------------------------


def test_cursor_from_the_body_goes_back_as_a_query_parameter() -> None:
    paginator = Cursor(cursor_path="paging.next.after", param="after")
    nxt = follow(paginator, {"paging": {"next": {"after": "52"}}}, sent=request(limit="100"))
    assert nxt.url.params["after"] == "52"
    assert nxt.url.params["limit"] == "100"


def test_cursor_replaces_the_previous_token() -> None:
    paginator = Cursor(cursor_path="next", param="cursor")
    nxt = follow(paginator, {"next": "c"}, sent=request(cursor="b"))
    assert nxt.url.params.get_list("cursor") == ["c"]


def test_numeric_cursor_is_sent_as_text() -> None:
    nxt = follow(Cursor(cursor_path="meta.next"), {"meta": {"next": 200}})
    assert nxt.url.params["cursor"] == "200"


@pytest.mark.parametrize(
    "body", [{}, {"paging": None}, {"paging": {"next": {"after": None}}}, {"paging": {"next": {"after": ""}}}]
)
def test_cursor_stops_when_the_token_is_missing_or_empty(body: dict[str, Any]) -> None:
    assert follow(Cursor(cursor_path="paging.next.after", param="after"), body) is None


def test_cursor_from_a_response_header() -> None:
    paginator = Cursor(cursor_header="X-Next-Cursor", param="page_token")
    nxt = follow(paginator, {"items": []}, headers={"X-Next-Cursor": "tok-2"})
    assert nxt.url.params["page_token"] == "tok-2"
    assert follow(paginator, {"items": []}) is None


def test_initial_cursor_is_sent_with_the_first_request() -> None:
    paginator = Cursor(cursor_path="next", param="since", initial="0", limit_param="limit", page_size=50)
    first = paginator.first_request(request())
    assert dict(first.url.params) == {"since": "0", "limit": "50"}


def test_without_initial_cursor_the_first_request_has_no_token() -> None:
    first = Cursor(cursor_path="next", param="after").first_request(request())
    assert "after" not in first.url.params


def test_cursor_in_a_json_body_keeps_the_other_fields() -> None:
    paginator = Cursor(cursor_path="paging.next.after", param="after", location="json")
    sent = httpx.Request("POST", URL, json={"filters": [], "limit": 100})
    nxt = follow(paginator, {"paging": {"next": {"after": "9"}}}, sent=sent)
    assert orjson.loads(nxt.content) == {"filters": [], "limit": 100, "after": "9"}
    assert nxt.method == "POST" and nxt.headers["Content-Length"] == str(len(nxt.content))


@pytest.mark.parametrize("fields", [{}, {"cursor_path": "next", "cursor_header": "X-Next"}])
def test_cursor_needs_exactly_one_source(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="exactly one of cursor_path or cursor_header"):
        Cursor.model_validate(fields)


# -- next link -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ('<https://api.example.com/v1/users?_page=2>; rel="next"', "https://api.example.com/v1/users?_page=2"),
        ('<https://a.example/u?p=1>; rel="prev", <https://a.example/u?p=3>; rel="next"', "https://a.example/u?p=3"),
        ("<https://api.example.com/v1/users?page=4>; rel=next", "https://api.example.com/v1/users?page=4"),
        (  # json-server 0.17
            '<http://h:3000/users?_page=1>; rel="first", <http://h:3000/users?_page=2>; rel="next", '
            '<http://h:3000/users?_page=9>; rel="last"',
            "http://h:3000/users?_page=2",
        ),
        ('<https://api.example.com/v1/users?ids=1,2>; rel="next last"', "https://api.example.com/v1/users?ids=1,2"),
        ('</v1/users?_page=5>; rel="next"', "https://api.example.com/v1/users?_page=5"),
        ('<?_page=6>; rel="next"', "https://api.example.com/v1/users?_page=6"),
    ],
)
def test_link_header_next_url_is_followed(link: str, expected: str) -> None:
    nxt = follow(NextLink(), [{"id": 1}], headers={"Link": link})
    assert str(nxt.url) == expected


@pytest.mark.parametrize(
    "headers",
    [{}, {"Link": ""}, {"Link": '<https://api.example.com/v1/users?_page=1>; rel="prev"'}, {"Link": "not a link"}],
)
def test_link_header_without_rel_next_ends_the_list(headers: dict[str, str]) -> None:
    assert follow(NextLink(), [{"id": 1}], headers=headers) is None


def test_a_header_holding_a_bare_url_is_followed_like_kintos_next_page() -> None:
    next_page = "http://127.0.0.1:8888/v1/buckets/crm/collections/users/records?_limit=2&_token=abc"
    nxt = follow(NextLink(header="Next-Page"), {"data": []}, headers={"Next-Page": next_page})
    assert str(nxt.url) == next_page
    assert nxt.url.params["_token"] == "abc"


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("https://other.example.com/v2/users?after=7", "https://other.example.com/v2/users?after=7"),
        ("/v1/users?after=8", "https://api.example.com/v1/users?after=8"),
    ],
)
def test_a_url_in_the_body_is_followed_relative_or_absolute(next_url: str, expected: str) -> None:
    nxt = follow(NextLink(next_path="links.next"), {"links": {"next": next_url}})
    assert str(nxt.url) == expected


@pytest.mark.parametrize("body", [{"links": {}}, {"links": {"next": None}}, {"links": {"next": ""}}])
def test_a_missing_body_url_ends_the_list(body: dict[str, Any]) -> None:
    assert follow(NextLink(next_path="links.next"), body) is None


def test_next_link_keeps_the_method_and_headers() -> None:
    sent = httpx.Request("GET", URL, headers={"X-Tenant": "t1"})
    nxt = follow(NextLink(), [], headers={"Link": '</v1/users?_page=2>; rel="next"'}, sent=sent)
    assert nxt.method == "GET" and nxt.headers["X-Tenant"] == "t1"


# -- offset ----------------------------------------------------------------------------------------


def test_offset_first_request_sets_start_and_limit() -> None:
    first = Offset(limit_param="limit", page_size=100, start=0).first_request(request())
    assert dict(first.url.params) == {"offset": "0", "limit": "100"}


def test_offset_advances_by_what_the_page_held() -> None:
    paginator = Offset(param="skip", limit_param="limit", page_size=100)
    page = view(records=[{"id": i} for i in range(80)])
    nxt = paginator.next_request(request(skip="200", limit="100"), response(), page)
    assert nxt is not None and nxt.url.params["skip"] == "280"


def test_offset_advances_by_page_size_when_told() -> None:
    paginator = Offset(advance="page_size", limit_param="limit", page_size=100)
    nxt = paginator.next_request(request(offset="100"), response(), view(records=[{"id": 1}]))
    assert nxt is not None and nxt.url.params["offset"] == "200"


def test_offset_counts_from_start_when_the_request_has_no_offset() -> None:
    nxt = Offset(start=10).next_request(request(), response(), view(records=[{"id": 1}, {"id": 2}]))
    assert nxt is not None and nxt.url.params["offset"] == "12"


def test_offset_stops_on_a_short_page_by_default() -> None:
    paginator = Offset(limit_param="limit", page_size=3)
    assert paginator.is_last(view(records=[{"id": 1}, {"id": 2}]))
    assert not paginator.is_last(view(records=[{"id": 1}, {"id": 2}, {"id": 3}]))


# -- page number -----------------------------------------------------------------------------------


def test_page_number_first_request_starts_at_start() -> None:
    first = PageNumber(limit_param="per_page", page_size=25).first_request(request())
    assert dict(first.url.params) == {"page": "1", "per_page": "25"}


def test_page_number_asks_for_the_next_page() -> None:
    nxt = PageNumber(param="_page").next_request(request(_page="3"), response(), view())
    assert nxt is not None and nxt.url.params["_page"] == "4"


@pytest.mark.parametrize(("current", "ends"), [("1", False), ("4", False), ("5", True)])
def test_page_number_stops_at_the_page_count(current: str, ends: bool) -> None:
    paginator = PageNumber(total_pages_path="meta.pages")
    body = {"meta": {"pages": 5}}
    nxt = paginator.next_request(request(page=current), response(body), view(body))
    assert (nxt is None) is ends


def test_page_number_counting_from_zero_stops_at_the_page_count() -> None:
    paginator = PageNumber(start=0, total_pages_path="pages")
    assert paginator.next_request(request(page="1"), response({"pages": 2}), view({"pages": 2})) is None


# -- keyset and single page ------------------------------------------------------------------------


def test_keyset_sends_the_last_records_key() -> None:
    paginator = Keyset(param="since_id")
    nxt = paginator.next_request(request(since_id="3"), response(), view(records=[{"id": 4}, {"id": 9}]))
    assert nxt is not None and nxt.url.params["since_id"] == "9"


def test_keyset_reads_a_nested_key() -> None:
    paginator = Keyset(param="after", key_path="meta.seq")
    nxt = paginator.next_request(request(), response(), view(records=[{"meta": {"seq": "s-7"}}]))
    assert nxt is not None and nxt.url.params["after"] == "s-7"


@pytest.mark.parametrize("records", [[], [{"name": "no id"}], [{"id": None}]])
def test_keyset_stops_without_a_key(records: list[dict[str, Any]]) -> None:
    assert Keyset(param="since_id").next_request(request(), response(), view(records=records)) is None


def test_single_page_never_asks_for_more() -> None:
    paginator: Paginator = SinglePage()
    assert paginator.next_request(request(), response([{"id": 1}]), view()) is None


def test_page_size_is_set_on_the_first_request() -> None:
    first = SinglePage(limit_param="max", page_size=10).first_request(request(q="x"))
    assert dict(first.url.params) == {"q": "x", "max": "10"}


# -- stop rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "body", "count", "seen", "ends"),
    [
        ({}, {}, 0, 0, True),
        ({"empty_page": False}, {}, 0, 0, False),
        ({}, {}, 1, 1, False),
        ({"short_page": True}, {}, 9, 9, True),
        ({"short_page": True}, {}, 10, 10, False),
        ({"has_more_path": "has_more"}, {"has_more": False}, 10, 10, True),
        ({"has_more_path": "has_more"}, {"has_more": True}, 10, 10, False),
        ({"has_more_path": "has_more"}, {}, 10, 10, True),
        ({"total_path": "meta.total"}, {"meta": {"total": 30}}, 10, 30, True),
        ({"total_path": "meta.total"}, {"meta": {"total": 30}}, 10, 20, False),
        ({"total_path": "meta.total"}, {"meta": {"total": "30"}}, 10, 30, True),
        ({"total_path": "meta.total"}, {"meta": {}}, 10, 30, False),
    ],
)
def test_stop_rules(rules: dict[str, Any], body: dict[str, Any], count: int, seen: int, ends: bool) -> None:
    paginator = Cursor(cursor_path="next", page_size=10, stop=StopRules.model_validate(rules))
    page = view(body, records=[{"id": i} for i in range(count)], seen=seen)
    assert paginator.is_last(page) is ends


def test_short_page_rule_needs_a_page_size() -> None:
    paginator = Cursor(cursor_path="next", stop=StopRules(short_page=True))
    assert not paginator.is_last(view(records=[{"id": 1}]))


# -- validation from YAML/JSON ---------------------------------------------------------------------

PAGINATOR = TypeAdapter[Any](Paginator)


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"type": "single_page"}, SinglePage),
        ({"type": "cursor", "cursor_path": "next"}, Cursor),
        ({"type": "next_link", "header": "Next-Page"}, NextLink),
        ({"type": "offset", "page_size": 50, "limit_param": "limit"}, Offset),
        ({"type": "page_number", "stop": {"short_page": False}}, PageNumber),
        ({"type": "keyset", "param": "since_id"}, Keyset),
    ],
)
def test_config_selects_the_paginator_by_type(config: dict[str, Any], kind: type) -> None:
    assert isinstance(PAGINATOR.validate_python(config), kind)


@pytest.mark.parametrize(
    "config",
    [
        {"type": "bogus"},
        {"type": "offset", "pagesize": 10},
        {"type": "offset", "page_size": 0},
        {"type": "keyset"},
        {"type": "cursor", "cursor_path": "next", "stop": {"empty": True}},
    ],
)
def test_bad_config_is_rejected(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PAGINATOR.validate_python(config)


def test_paginators_are_frozen() -> None:
    paginator = Offset()
    with pytest.raises(ValidationError):
        paginator.param = "skip"  # type: ignore[misc]
