"""The connector runtime loop against a fake app on httpx.MockTransport: paging, resuming, retries and guards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from connectors.base import Connector, Hooks, Page, PageRequest, to_iso
from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    MalformedPage,
    PaginationLimit,
    PaginationLoop,
    RequestRejected,
    RetryableError,
)
from connectors.spec import ConnectorSpec, RetryPolicy

TOKEN = "tok-SEEKRIT-4242-zz"
BASE = "https://api.acme.example/v2"
PAGES: dict[str | None, dict[str, Any]] = {
    None: {"data": [{"id": 1}, {"id": 2}], "meta": {"next": "b"}},
    "b": {"data": [{"id": 3}], "meta": {"next": "c"}},
    "c": {"data": [{"id": 4}], "meta": {}},
}
App = Callable[[httpx.Request], httpx.Response]


class Acme:
    """A fake app serving PAGES by `cursor`, after answering its queued failures in order."""

    def __init__(self, *failures: httpx.Response | Exception) -> None:
        self.failures = list(failures)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return httpx.Response(200, json=PAGES[request.url.params.get("cursor")])


def acme_spec(listing: dict[str, Any] | None = None, **top: Any) -> ConnectorSpec:
    paginator = {"type": "cursor", "cursor_path": "meta.next", "limit_param": "limit", "page_size": 2}
    contacts = {
        "list": {"path": "/contacts", "records_path": "data", "paginator": paginator, **(listing or {})},
        "get": {"path": "/contacts/{id}", "record_path": "data"},
        "updated_at_path": "updated",
    }
    document = {
        "name": "acme",
        "title": "Acme",
        "base_url": BASE,
        "auth": {"type": "bearer"},
        "retry": {"attempts": 3, "backoff_seconds": 0},
        "collections": {"contacts": contacts},
    }
    return ConnectorSpec.model_validate({**document, **top})


def connect(
    app: App, spec: ConnectorSpec | None = None, hooks: Hooks | None = None, retry: RetryPolicy | None = None
) -> Connector:
    credentials = {"token": SecretStr(TOKEN), "api_key": SecretStr(TOKEN)}
    transport = httpx.MockTransport(app)
    return Connector(spec or acme_spec(), credentials=credentials, hooks=hooks, transport=transport, retry=retry)


async def read_all(connector: Connector, start: PageRequest | None = None, collection: str = "contacts") -> list[Page]:
    return [page async for page in connector.pages(collection, start)]


def ids(pages: list[Page]) -> list[Any]:
    return [record["id"] for page in pages for record in page.records]


# -- paging ----------------------------------------------------------------------------------------


async def test_pages_to_the_end() -> None:
    async with connect(Acme()) as acme:
        pages = await read_all(acme)
    assert [[r["id"] for r in page.records] for page in pages] == [[1, 2], [3], [4]]
    assert pages[-1].next is None and pages[0].url == f"{BASE}/contacts?limit=2"


async def test_every_request_carries_the_token_and_page_size() -> None:
    app = Acme()
    async with connect(app) as acme:
        await read_all(acme)
    assert {r.headers["Authorization"] for r in app.requests} == {f"Bearer {TOKEN}"}
    assert [dict(r.url.params) for r in app.requests][1] == {"limit": "2", "cursor": "b"}


async def test_resumes_from_a_stored_page_request() -> None:
    async with connect(Acme()) as acme:
        first = await acme.fetch_page("contacts", acme.first_request("contacts"))
        assert first.next is not None
        stored = PageRequest.from_json(first.next.to_json())
        rest = await read_all(acme, start=stored)
    assert stored == first.next and ids(rest) == [3, 4]


def test_a_page_request_with_a_body_round_trips_through_json() -> None:
    request = PageRequest("POST", f"{BASE}/search?x=1", b'{"filters":[],"after":"9"}')
    assert PageRequest.from_json(request.to_json()) == request


async def test_a_post_listing_sends_its_json_body_with_the_cursor() -> None:
    sent: list[httpx.Request] = []

    def search(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=PAGES[orjson.loads(request.content).get("cursor")])

    paginator = {"type": "cursor", "cursor_path": "meta.next", "location": "json"}
    async with connect(search, acme_spec({"method": "POST", "json_body": {"q": "x"}, "paginator": paginator})) as acme:
        assert ids(await read_all(acme)) == [1, 2, 3, 4]
    assert [orjson.loads(r.content) for r in sent] == [{"q": "x"}, {"q": "x", "cursor": "b"}, {"q": "x", "cursor": "c"}]
    assert {r.method for r in sent} == {"POST"} and {r.headers["Content-Type"] for r in sent} == {"application/json"}


async def test_a_total_count_stop_rule_counts_records_across_pages() -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("cursor", "0"))
        return httpx.Response(200, json={"data": [{"id": n}, {"id": n + 1}], "meta": {"next": str(n + 2), "total": 4}})

    stop = {"total_path": "meta.total"}
    spec = acme_spec({"paginator": {"type": "cursor", "cursor_path": "meta.next", "stop": stop}})
    async with connect(endless, spec) as acme:
        assert ids(await read_all(acme)) == [0, 1, 2, 3]


async def test_parameters_fill_the_urls() -> None:
    app = Acme()
    parameters = {"sub": {}, "region": {"default": "eu"}}
    spec = acme_spec({"path": "/{region}/contacts"}, base_url="https://{sub}.acme.example/v2", parameters=parameters)
    acme = Connector(
        spec, parameters={"sub": "t1"}, credentials={"token": SecretStr(TOKEN)}, transport=httpx.MockTransport(app)
    )
    async with acme:
        await acme.fetch_page("contacts", acme.first_request("contacts"))
    assert str(app.requests[0].url) == "https://t1.acme.example/v2/eu/contacts?limit=2"


@pytest.mark.parametrize(
    ("given", "message"), [({}, r"needs parameters \['sub'\]"), ({"sub": "a", "x": "b"}, r"has no parameters \['x'\]")]
)
def test_parameters_are_checked_when_connecting(given: dict[str, str], message: str) -> None:
    spec = acme_spec(base_url="https://{sub}.acme.example", parameters={"sub": {}})
    with pytest.raises(FatalError, match=message):
        Connector(spec, parameters=given, credentials={"token": SecretStr(TOKEN)})


# -- retries ---------------------------------------------------------------------------------------


async def test_retries_honour_retry_after(waits: list[float]) -> None:
    app = Acme(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(503, headers={"Retry-After": "0.5"}))
    async with connect(app) as acme:
        pages = await read_all(acme)
    assert waits == [2.0, 0.5]
    assert ids(pages) == [1, 2, 3, 4] and len(app.requests) == 5


async def test_5xx_without_retry_after_backs_off_and_completes(waits: list[float]) -> None:
    app = Acme(httpx.Response(502))
    async with connect(app, acme_spec(retry={"attempts": 3, "backoff_seconds": 0.5, "max_backoff_seconds": 1})) as acme:
        pages = await read_all(acme)
    assert len(waits) == 1 and 0 <= waits[0] <= 1
    assert ids(pages) == [1, 2, 3, 4]


async def test_a_hooks_wait_is_used_for_429(waits: list[float]) -> None:
    app = Acme(httpx.Response(429, headers={"Retry-After": "9"}))
    async with connect(app, hooks=Hooks(retry_after=lambda response: 0.125)) as acme:
        await read_all(acme)
    assert waits == [0.125]


async def test_a_retry_after_past_max_wait_is_not_slept_through(waits: list[float]) -> None:
    app = Acme(httpx.Response(429, headers={"Retry-After": "3600"}))
    async with connect(app) as acme:
        with pytest.raises(RetryableError) as caught:
            await read_all(acme)
    assert caught.value.retry_after == 3600.0 and waits == [] and len(app.requests) == 1


@pytest.mark.parametrize(
    ("status", "kind"), [(401, AuthError), (403, AuthError), (400, RequestRejected), (404, RequestRejected)]
)
async def test_no_retry_on_4xx(status: int, kind: type[ConnectorError], waits: list[float]) -> None:
    app = Acme(httpx.Response(status, text="no"))
    async with connect(app) as acme:
        with pytest.raises(kind):
            await read_all(acme)
    assert len(app.requests) == 1 and waits == []


async def test_retry_exhaustion_raises_retryable(waits: list[float]) -> None:
    app = Acme(*[httpx.Response(503, text="busy") for _ in range(3)])
    async with connect(app) as acme:
        with pytest.raises(RetryableError, match="answered 503"):
            await read_all(acme)
    assert len(app.requests) == 3 and len(waits) == 2


async def test_a_retry_policy_given_when_connecting_overrides_the_spec(waits: list[float]) -> None:
    app = Acme(*[httpx.Response(503) for _ in range(3)])
    async with connect(app, retry=RetryPolicy(attempts=1)) as acme:
        with pytest.raises(RetryableError):
            await read_all(acme)
    assert len(app.requests) == 1 and waits == []


async def test_a_timeout_is_retried(waits: list[float]) -> None:
    app = Acme(httpx.ReadTimeout("slow"))
    async with connect(app) as acme:
        assert ids(await read_all(acme)) == [1, 2, 3, 4]
    assert len(waits) == 1


async def test_repeated_timeouts_raise_retryable(waits: list[float]) -> None:
    app = Acme(*[httpx.ConnectTimeout("slow") for _ in range(3)])
    async with connect(app) as acme:
        with pytest.raises(RetryableError, match=r"timed out after 30.0s"):
            await read_all(acme)


async def test_an_unreachable_host_is_retryable_and_names_the_url(waits: list[float]) -> None:
    app = Acme(*[httpx.ConnectError("[Errno 111] Connection refused") for _ in range(3)])
    async with connect(app) as acme:
        with pytest.raises(RetryableError) as caught:
            await read_all(acme)
    assert f"cannot reach {BASE}/contacts?limit=2" in str(caught.value)
    assert caught.value.url == f"{BASE}/contacts?limit=2" and len(app.requests) == 3


# -- malformed pages and guards --------------------------------------------------------------------


async def test_a_non_json_page_is_malformed_naming_connector_and_page() -> None:
    app = Acme(httpx.Response(200, text="<html>maintenance</html>", headers={"Content-Type": "text/html"}))
    async with connect(app) as acme:
        with pytest.raises(MalformedPage) as caught:
            await read_all(acme)
    message = str(caught.value)
    assert message.startswith(f"acme: the page {BASE}/contacts?limit=2 is not JSON") and "text/html" in message


async def test_a_missing_records_path_is_malformed() -> None:
    app = Acme(httpx.Response(200, json={"items": [{"id": 1}], "meta": {}}))
    async with connect(app) as acme:
        with pytest.raises(MalformedPage, match=r"has no records at 'data' \(found \['items', 'meta'\]\)"):
            await read_all(acme)


@pytest.mark.parametrize("data", [{"id": 1}, [1, 2], "text", [{"id": 1}, None]])
async def test_records_that_are_not_a_list_of_objects_are_malformed(data: Any) -> None:
    app = Acme(httpx.Response(200, json={"data": data}))
    async with connect(app) as acme:
        with pytest.raises(MalformedPage, match="not a list of objects"):
            await read_all(acme)


@pytest.mark.parametrize("prefetch", [False, True])
async def test_the_same_token_twice_is_a_pagination_loop(prefetch: bool) -> None:
    app = Acme(*[httpx.Response(200, json={"data": [{"id": 1}], "meta": {"next": "same"}}) for _ in range(3)])
    read: list[Page] = []
    async with connect(app) as acme:
        with pytest.raises(PaginationLoop, match="same next page twice"):
            async for page in acme.pages("contacts", prefetch=prefetch):
                read.append(page)
    assert len(read) == 2 and len(app.requests) == 2


@pytest.mark.parametrize("prefetch", [False, True])
async def test_max_pages_is_a_pagination_limit(prefetch: bool) -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("cursor", "0"))
        return httpx.Response(200, json={"data": [{"id": n}], "meta": {"next": str(n + 1)}})

    read: list[Page] = []
    async with connect(endless, acme_spec(max_pages=3)) as acme:
        with pytest.raises(PaginationLimit, match="more than max_pages=3 pages"):
            async for page in acme.pages("contacts", prefetch=prefetch):
                read.append(page)
    assert ids(read) == [0, 1, 2]


class SlowSecondPage:
    """PAGES, except that page `b` is answered only once `release` is set; `asked` is set when it is requested."""

    def __init__(self) -> None:
        self.asked, self.release, self.cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        if cursor == "b":
            self.asked.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return httpx.Response(200, json=PAGES[cursor])


async def test_prefetch_asks_for_the_next_page_while_the_caller_still_holds_this_one() -> None:
    app = SlowSecondPage()
    async with connect(app) as acme:  # type: ignore[arg-type]  # MockTransport takes async handlers too
        async with aclosing(acme.pages("contacts", prefetch=True)) as pages:
            first = await anext(pages)
            await app.asked.wait()  # the caller has not asked for page b
            app.release.set()
            rest = [page async for page in pages]
    assert ids([first, *rest]) == [1, 2, 3, 4]


async def test_closing_a_prefetching_listing_cancels_the_page_read_ahead() -> None:
    app = SlowSecondPage()
    async with connect(app) as acme:  # type: ignore[arg-type]
        pages = acme.pages("contacts", prefetch=True)
        assert ids([await anext(pages)]) == [1, 2]
        await app.asked.wait()
        await pages.aclose()
    assert app.cancelled.is_set() and not app.release.is_set()


async def test_a_resumed_listing_counts_the_records_seen_before_its_start() -> None:
    total = {"data": [{"id": 3}], "meta": {"next": "c"}, "total": 3}
    app = Acme(httpx.Response(200, json=total))
    spec = acme_spec({"paginator": {"type": "cursor", "cursor_path": "meta.next", "stop": {"total_path": "total"}}})
    async with connect(app, spec) as acme:
        pages = [page async for page in acme.pages("contacts", PageRequest("GET", f"{BASE}/contacts?cursor=b"), seen=2)]
    assert ids(pages) == [3] and pages[0].next is None and len(app.requests) == 1


async def test_an_unknown_collection_is_fatal() -> None:
    async with connect(Acme()) as acme:
        with pytest.raises(FatalError, match=r"acme has no collection 'deals'; it has \['contacts'\]"):
            await read_all(acme, collection="deals")


# -- get -------------------------------------------------------------------------------------------


def one(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v2/contacts/7":
        return httpx.Response(200, json={"data": {"id": 7, "name": "Ada"}})
    if request.url.path == "/v2/contacts/8":
        return httpx.Response(200, json={"data": None})
    return httpx.Response(404, json={"message": "not found"})


async def test_get_returns_the_record() -> None:
    async with connect(one) as acme:
        assert await acme.get("contacts", "7") == {"id": 7, "name": "Ada"}


async def test_get_of_a_missing_record_is_none() -> None:
    async with connect(one) as acme:
        assert await acme.get("contacts", "404") is None


async def test_get_without_a_record_object_is_malformed() -> None:
    async with connect(one) as acme:
        with pytest.raises(MalformedPage, match="contacts record 8 has no object at 'data'"):
            await acme.get("contacts", "8")


async def test_get_escapes_the_id() -> None:
    app = Acme(httpx.Response(404))
    async with connect(app) as acme:
        await acme.get("contacts", "a/b c")
    assert app.requests[0].url.raw_path == b"/v2/contacts/a%2Fb%20c"


async def test_an_id_no_url_can_hold_is_a_rejected_request_not_a_raw_httpx_error() -> None:
    app = Acme()
    async with connect(app) as acme:
        with pytest.raises(RequestRejected, match="cannot build a request") as caught:
            await acme.get("contacts", "9" * 100_000)
    assert app.requests == []  # nothing was sent
    assert len(str(caught.value)) < 1_000


async def test_get_errors_other_than_not_found_raise() -> None:
    async with connect(Acme(httpx.Response(401))) as acme:
        with pytest.raises(AuthError):
            await acme.get("contacts", "7")


async def test_get_needs_a_get_in_the_spec() -> None:
    spec = acme_spec()
    listing_only = spec.collections["contacts"].model_copy(update={"get": None})
    async with connect(one, spec.model_copy(update={"collections": {"contacts": listing_only}})) as acme:
        with pytest.raises(FatalError, match="acme.contacts declares no `get`"):
            await acme.get("contacts", "7")


# -- credentials stay secret -----------------------------------------------------------------------


def echo(status: int) -> App:
    def app(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=f"{request.headers.get('Authorization')} {request.url}")

    return app


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"refused {request.headers.get('Authorization')} at {request.url}")


@pytest.mark.parametrize("app", [echo(401), echo(403), echo(400), echo(500), echo(429), echo(200), refuse])
@pytest.mark.parametrize("auth", [{"type": "bearer"}, {"type": "api_key", "in": "query", "name": "key"}])
async def test_credentials_never_appear_in_errors(app: App, auth: dict[str, str], waits: list[float]) -> None:
    async with connect(app, acme_spec(auth=auth)) as acme:
        with pytest.raises(ConnectorError) as caught:
            await read_all(acme)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert TOKEN not in caught.value.url and TOKEN not in repr(acme)


async def test_a_query_api_key_stays_out_of_the_next_page_request() -> None:
    async with connect(Acme(), acme_spec(auth={"type": "api_key", "in": "query", "name": "key"})) as acme:
        pages = await read_all(acme)
    assert all(TOKEN not in page.url and (page.next is None or TOKEN not in page.next.url) for page in pages)


async def test_a_loop_on_a_url_echoing_the_api_key_does_not_show_it() -> None:
    def echoes(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": 1}], "next": str(request.url)})

    auth = {"type": "api_key", "in": "query", "name": "key"}
    spec = acme_spec({"paginator": {"type": "next_link", "next_path": "next"}}, auth=auth)
    async with connect(echoes, spec) as acme:
        with pytest.raises(PaginationLoop) as caught:
            await read_all(acme)
    assert TOKEN not in str(caught.value)


# -- record helpers --------------------------------------------------------------------------------


async def test_record_id_and_updated_at() -> None:
    async with connect(Acme()) as acme:
        assert acme.record_id("contacts", {"id": 12, "updated": 1714468364117}) == "12"
        assert acme.updated_at("contacts", {"id": 12, "updated": 1714468364117}) == "2024-04-30T09:12:44.117Z"


@pytest.mark.parametrize("record", [{}, {"id": None}, {"id": ""}])
async def test_a_record_without_an_id_is_malformed(record: dict[str, Any]) -> None:
    async with connect(Acme()) as acme:
        with pytest.raises(MalformedPage, match="a contacts record has no id at 'id'"):
            acme.record_id("contacts", record)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (1714468364, "2024-04-30T09:12:44.000Z"),
        (1714468364117, "2024-04-30T09:12:44.117Z"),
        ("1714468364117", "2024-04-30T09:12:44.117Z"),
        ("2024-04-30T09:12:44.117Z", "2024-04-30T09:12:44.117Z"),
        (1714468364.117, "2024-04-30T09:12:44.117Z"),
        (-86400, "1969-12-31T00:00:00.000Z"),
        (1e20, "1e+20"),  # no date holds these: the app's junk comes back as text, the page goes on
        ("99999999999999999999", "99999999999999999999"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
    ],
)
def test_to_iso(value: Any, expected: str | None) -> None:
    assert to_iso(value) == expected
