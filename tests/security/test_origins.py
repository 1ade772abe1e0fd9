"""Credentials go only to the origins their connector declares: a next link, a delta link or any request to
another origin is refused (or, where the connector says so, sent bare), enforced where requests are sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.base import Connector
from connectors.egress import EgressPolicy
from connectors.errors import OriginRefused
from connectors.incremental import change_pages, pull_changes
from connectors.origins import OriginBoundAuth, origin_of
from connectors.registry import load, open_connector
from connectors.spec import RetryPolicy
from tests.security.conftest import Recorder, Seen, recording

LOOPBACK = EgressPolicy(allow_hosts=frozenset({"127.0.0.1"}))  # what the test installation allows
ONCE = RetryPolicy(attempts=1)
SECRET = "s3cret-pa55word"
CREDENTIALS = {
    "kinto": {"username": SecretStr("admin"), "password": SecretStr(SECRET)},
    "json_server": {},
    "msgraph": {"token": SecretStr(SECRET)},
    "salesforce": {"token": SecretStr(SECRET)},
    "zendesk": {"username": SecretStr("agent@acme.example/token"), "api_token": SecretStr(SECRET)},
}
PARAMETERS = {
    "kinto": {"base_url": "https://kinto.acme.example/v1"},
    "json_server": {"base_url": "https://json.acme.example"},
    "msgraph": {},
    "salesforce": {"base_url": "https://acme.my.salesforce.com"},
    "zendesk": {"base_url": "https://acme.zendesk.com"},
}


def first_page(app: str, link: str) -> httpx.Response:
    """A page of one record whose next link (in the app's own place for it) is `link`."""
    if app == "kinto":
        return httpx.Response(200, json={"data": [{"id": "a", "last_modified": 1}]}, headers={"Next-Page": link})
    if app == "json_server":
        return httpx.Response(200, json=[{"id": 1}], headers={"Link": f'<{link}>; rel="next"'})
    if app == "msgraph":
        return httpx.Response(200, json={"value": [{"id": "u1"}], "@odata.nextLink": link})
    if app == "salesforce":
        return httpx.Response(200, json={"records": [{"Id": "1"}], "done": False, "nextRecordsUrl": link})
    body = {"users": [{"id": 1, "active": True}], "after_url": link, "after_cursor": "c", "end_of_stream": False}
    return httpx.Response(200, json=body)  # zendesk's incremental export


def linking(app: str, link: str, sent: list[httpx.Request]) -> Connector:
    """The connector, talking to an app whose first answer links to `link` and every later one is empty."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            return first_page(app, link)
        return httpx.Response(200, json=[] if app == "json_server" else {"data": [], "value": [], "records": []})

    return open_connector(
        app,
        parameters=PARAMETERS[app],
        credentials=CREDENTIALS[app],
        transport=httpx.MockTransport(handler),
        retry=ONCE,
    )


async def read_all(connector: Connector) -> None:
    collection = connector.spec.collection_for("users")
    if connector.name == "zendesk":
        async for _ in change_pages(connector, collection):
            pass
        return
    async for _ in connector.pages(collection):
        pass


@pytest.mark.parametrize("app", sorted(PARAMETERS))
async def test_a_next_link_to_another_host_is_refused_by_every_connector_that_follows_links(app: str) -> None:
    sent: list[httpx.Request] = []
    async with linking(app, "https://evil.example/steal?page=2", sent) as connector:
        with pytest.raises(OriginRefused) as refused:
            await read_all(connector)
    assert "https://evil.example" in str(refused.value) and "declares its origins" in str(refused.value)
    assert len(sent) == 1 and sent[0].url.host != "evil.example"  # the first page only


@pytest.mark.parametrize(
    "link",
    [
        "http://kinto.acme.example/v1/next",  # the same host over plain http
        "https://kinto.acme.example:8443/v1/next",  # another port
        "//evil.example/v1/next",  # scheme-relative
        "https://kinto.acme.example@evil.example/v1/next",  # user info that looks like the host
        "https://kinto.acme.example.evil.example/v1/next",  # a suffix of the host
        "HTTPS://EVIL.EXAMPLE/v1/next",
    ],
)
async def test_every_disguise_of_another_origin_is_refused(link: str) -> None:
    sent: list[httpx.Request] = []
    async with linking("kinto", link, sent) as connector:
        with pytest.raises(OriginRefused):
            await read_all(connector)
    assert len(sent) == 1 and "authorization" in sent[0].headers


async def test_a_relative_link_on_the_same_origin_is_followed_with_credentials() -> None:
    sent: list[httpx.Request] = []
    async with linking("kinto", "/v1/buckets/crm/collections/users/records?_token=2", sent) as connector:
        await read_all(connector)
    assert len(sent) == 2 and all("authorization" in r.headers for r in sent)
    assert sent[1].url.params["_token"] == "2"


async def test_a_stored_delta_link_on_another_origin_is_refused() -> None:
    sent: list[httpx.Request] = []
    async with linking("msgraph", "unused", sent) as graph:
        with pytest.raises(OriginRefused, match="https://evil.example"):
            await pull_changes(graph, "users", "https://evil.example/v1.0/users/delta?$deltatoken=x")
    assert sent == []


async def test_origins_declared_in_connector_yaml_get_the_credentials() -> None:
    spec, hooks = load("kinto")
    widened = spec.model_copy(update={"origins": ["https://files.acme.example"]})
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return (
            first_page("kinto", "https://files.acme.example/next")
            if len(sent) == 1
            else httpx.Response(200, json={"data": []})
        )

    connector = Connector(
        widened, parameters=PARAMETERS["kinto"], credentials=CREDENTIALS["kinto"], hooks=hooks,
        transport=httpx.MockTransport(handler), retry=ONCE,
    )  # fmt: skip
    async with connector:
        await read_all(connector)
    assert [r.url.host for r in sent] == ["kinto.acme.example", "files.acme.example"]
    assert all(r.headers["authorization"].startswith("Basic ") for r in sent)


def test_origin_bound_auth_sends_nothing_to_another_origin_whoever_sends() -> None:
    seen: list[httpx.Request] = []
    auth = OriginBoundAuth(httpx.BasicAuth("admin", SECRET), [origin_of("https://kinto.acme.example")])
    with httpx.Client(transport=recording(seen), auth=auth) as c:
        c.get("https://kinto.acme.example/v1")
        c.get("https://evil.example/v1")
    assert "authorization" in seen[0].headers and "authorization" not in seen[1].headers


# -- over real loopback HTTP: a Kinto-shaped source and a second server on another origin --------------------


def kinto_linking_to(other: Recorder) -> Callable[[Seen, str], tuple[int, Any, dict[str, str]]]:
    """A Kinto-shaped first page whose Next-Page points at `other`, as `localhost` (another origin)."""

    def reply(seen: Seen, own: str) -> tuple[int, Any, dict[str, str]]:
        port = other.url.rsplit(":", 1)[1]
        link = f"http://localhost:{port}{seen.path}?_token=stolen"
        return 200, {"data": [{"id": "r1", "last_modified": 1}]}, {"Next-Page": link}

    return reply


async def test_kinto_next_page_to_another_loopback_origin_is_refused_and_gets_nothing(
    recorders: Callable[..., Recorder],
) -> None:
    other = recorders()
    source = recorders(kinto_linking_to(other))
    params = {"base_url": source.url + "/v1"}
    async with open_connector("kinto", parameters=params, credentials=CREDENTIALS["kinto"], egress=LOOPBACK) as kinto:
        with pytest.raises(OriginRefused, match=r"http://localhost:\d+"):
            await read_all(kinto)
    assert len(source.seen) == 1 and source.seen[0].headers["authorization"].startswith("Basic ")
    assert other.seen == []


async def test_a_connector_that_follows_foreign_links_bare_sends_no_authorization(
    recorders: Callable[..., Recorder],
) -> None:
    other = recorders()
    source = recorders(kinto_linking_to(other))
    spec, hooks = load("kinto")
    bare = Connector(
        spec.model_copy(update={"foreign_links": "without_credentials"}),
        parameters={"base_url": source.url + "/v1"}, credentials=CREDENTIALS["kinto"], hooks=hooks, egress=LOOPBACK,
    )  # fmt: skip
    async with bare:
        await read_all(bare)
    assert len(other.seen) == 1 and "authorization" not in other.seen[0].headers
    assert not other.seen[0].carries(SECRET) and not other.seen[0].carries("YWRtaW46")  # base64 of "admin:"
