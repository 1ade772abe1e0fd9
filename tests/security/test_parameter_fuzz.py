"""Property: whatever a connection parameter holds, the connector either refuses it or every request it
builds stays on the declared origin, inside its path segments."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.base import Connector
from connectors.errors import InvalidParameter
from connectors.origins import origin_of
from connectors.parameters import TOKEN_PATTERN, ParameterSpec, host_matches
from connectors.registry import available, load, open_connector
from connectors.spec import RESERVED_PARAMETERS
from tests.security.conftest import STRICT, recording

VALID = {
    "json_server": {"base_url": "https://json.example.org"},
    "kinto": {"base_url": "https://kinto.example.org/v1"},
    "salesforce": {"base_url": "https://acme.my.salesforce.com"},
    "zendesk": {"base_url": "https://acme.zendesk.com"},
}
PIECES = [
    "..",
    ".",
    "/",
    "?",
    "#",
    "@",
    ":",
    "\\",
    "%2e",
    "%2f",
    "%00",
    "[::1]",
    "127.0.0.1",
    "localhost",
    "evil.example",
]
TAILS = ["/v1", "/a", "/.", "/..", "?x=1", "#y", "/%2e%2e", "@evil.example", "/", "\\evil.example", "/a?b", ":8443"]
text = st.text(max_size=40) | st.lists(st.sampled_from(PIECES) | st.text(string.printable, max_size=6), max_size=8).map(
    "".join
)


def values(rule: ParameterSpec | None) -> st.SearchStrategy[str]:
    """Valid values, hostile text, and valid values with something hostile added, in about equal parts."""
    if rule is not None and rule.is_url:
        hosts = [h.replace("*.", "acme.").replace("*", "kinto.example.org") for h in rule.hosts or ()]
        return st.builds(  # each part right about half the time
            lambda scheme, host, port, tail: f"{scheme}{host}{port}{tail}",
            st.just("https://") | st.sampled_from(["http://", "HTTPS://", "//", "ftp://", ""]),
            st.sampled_from(hosts) | st.sampled_from(["evil.example", "127.0.0.1", "[::1]", "2130706433"]) | text,
            st.just("") | st.sampled_from([":443", ":8443", ":0", ":99999"]),
            st.just("") | st.lists(st.sampled_from(TAILS), max_size=3).map("".join),
        )
    valid = (
        st.sampled_from(rule.enum)
        if rule and rule.enum
        else st.from_regex((rule.pattern if rule and rule.pattern else TOKEN_PATTERN), fullmatch=True)
    )
    return valid | text | st.builds(str.__add__, valid, st.sampled_from(PIECES))


def parameter_names(app: str) -> list[str]:
    return sorted(set(load(app)[0].parameters) | RESERVED_PARAMETERS)


CASES = [(app, name) for app in available() for name in parameter_names(app)]


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for every example (a loop per example costs more than the example)."""
    with asyncio.Runner() as loop:
        yield loop


def requests_built(connector: Connector, sent: list[httpx.Request], runner: asyncio.Runner) -> list[httpx.Request]:
    """Every request a run starts with: each listing's first page, a record by id, a first incremental pull."""

    async def build() -> None:
        for name, collection in connector.spec.collections.items():
            sent.append(connector.build(connector.first_request(name)))
            if collection.get is not None:
                await connector.get(name, "1")
            if collection.changes is not None:
                sent.append(connector.request(collection.changes.method, collection.changes.path))

    runner.run(build())
    return sent


def stays_home(app: str, connector: Connector, request: httpx.Request) -> bool:
    """On the connector's one origin, whose host the connector declares, and no segment a dot segment."""
    spec = load(app)[0]
    base_rule = spec.parameters.get("base_url")
    host = request.url.host
    declared = host_matches(host, base_rule.hosts or ()) if base_rule and base_rule.is_url else True
    segments = [unquote(s) for s in request.url.raw_path.decode().split("?")[0].split("/")]
    return connector.origins == {origin_of(request.url)} and declared and not {".", ".."} & set(segments)


@pytest.mark.parametrize(("app", "name"), CASES)
def test_a_parameter_never_moves_a_request_off_its_origin(app: str, name: str, runner: asyncio.Runner) -> None:
    # a @given per case (not st.data()): Prefect's background threads of other tests may use `random` meanwhile,
    # which hypothesis would take for a strategy drawing from it
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(value=values(load(app)[0].parameters.get(name)))
    def stays_on_its_origin(value: str) -> None:
        check_one(app, name, value, runner)

    stays_on_its_origin()


def check_one(app: str, name: str, value: str, runner: asyncio.Runner) -> None:
    """The connector refuses `value`, or every request it builds with it stays home, its path whole."""
    parameters = {**VALID.get(app, {}), name: value}
    sent: list[httpx.Request] = []
    record = recording(sent, status=404)
    try:
        connector = open_connector(
            app, parameters=parameters, credentials=_credentials(app), egress=STRICT, transport=record
        )
    except InvalidParameter:
        return
    built = requests_built(connector, sent, runner)
    assert built and all(stays_home(app, connector, request) for request in built), (value, built)
    listing = connector.spec.collections[connector.spec.collection_for("users")].list.path
    first = httpx.URL(connector.first_request(connector.spec.collection_for("users")).url).raw_path.decode()
    base_path = httpx.URL(connector.base_url).raw_path.decode().rstrip("/")
    assert first.split("?")[0].removeprefix(base_path).count("/") == listing.count("/"), (value, first)


def _credentials(app: str) -> dict[str, SecretStr]:
    return {key: SecretStr("secret") for key in load(app)[0].auth.required_keys()}
