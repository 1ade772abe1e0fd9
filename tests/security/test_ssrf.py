"""The SSRF matrix: no connection parameter, DNS answer or redirect makes a connector call a loopback,
private, link-local or metadata address, and no parameter escapes its path segment.

Every attack runs against every connector in an installation that allow-lists nothing; a loopback server
listens on the port the attacks name and must hear nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine

from connectors import egress
from connectors.base import Connector
from connectors.egress import EgressPolicy, guarded_transport
from connectors.errors import EgressRefused, InvalidParameter, MalformedPage
from connectors.registry import available, load, open_connector
from connectors.spec import RESERVED_PARAMETERS, ConnectorSpec, RetryPolicy
from inlet.errors import ConfigError
from inlet.store import Vault, add_connection, add_tenant, create_store_engine, migrate
from tests.security.conftest import STRICT, Recorder

APPS = available()
ONCE = RetryPolicy(attempts=1)
VALID = {  # a value for each parameter without a default, so one parameter at a time can be attacked
    "json_server": {"base_url": "https://json.example.org"},
    "kinto": {"base_url": "https://kinto.example.org/v1"},
    "salesforce": {"base_url": "https://acme.my.salesforce.com"},
    "zendesk": {"base_url": "https://acme.zendesk.com"},
}
INTERNAL = [  # (what it is, the host as a URL writes it)
    ("loopback", "127.0.0.1"),
    ("loopback, elsewhere in 127/8", "127.8.9.10"),
    ("unspecified", "0.0.0.0"),
    ("private 10/8", "10.0.0.1"),
    ("private 172.16/12", "172.16.5.4"),
    ("private 192.168/16", "192.168.1.1"),
    ("link-local: cloud metadata", "169.254.169.254"),
    ("shared 100.64/10: Alibaba metadata", "100.100.100.200"),
    ("IETF 192.0.0/24: Oracle metadata", "192.0.0.192"),
    ("benchmarking 198.18/15", "198.18.0.1"),
    ("multicast", "224.0.0.1"),
    ("reserved 240/4", "240.0.0.1"),
    ("broadcast", "255.255.255.255"),
    ("IPv6 loopback", "[::1]"),
    ("IPv6 unspecified", "[::]"),
    ("IPv6 unique local: AWS metadata", "[fd00:ec2::254]"),
    ("IPv6 link-local", "[fe80::1]"),
    ("IPv4-mapped IPv6", "[::ffff:127.0.0.1]"),
    ("IPv4-mapped IPv6, hex", "[::ffff:7f00:1]"),
    ("IPv4-mapped IPv6, private", "[::ffff:10.0.0.1]"),
    ("IPv4-compatible IPv6", "[::127.0.0.1]"),
    ("NAT64 of loopback", "[64:ff9b::7f00:1]"),
    ("6to4 of loopback", "[2002:7f00:1::]"),
    ("6to4 of metadata", "[2002:a9fe:a9fe::]"),
]
ENCODED_LOOPBACK = [
    ("decimal", "2130706433"),
    ("hex", "0x7f000001"),
    ("dotted hex", "0x7f.0.0.1"),
    ("octal", "0177.0.0.1"),
    ("dotted octal with zeros", "0177.0000.0000.0001"),
    ("short form", "127.1"),
    ("a name for loopback", "localhost"),
    ("a name for loopback, upper case", "LOCALHOST"),
    ("a name for loopback, rooted", "localhost."),
]
ATTACKS = INTERNAL + ENCODED_LOOPBACK
TRAVERSALS = [
    "../../../stats?x=",
    "..",
    ".",
    "%2e%2e",
    "..%2F..%2Fstats",
    "a/b",
    "a?b",
    "a#b",
    "a\\b",
    "a b",
    "a\nb",
    "",
]


@pytest.fixture(scope="module")
def listener() -> Iterator[Recorder]:
    """One loopback server on the port every attack names; it must never hear a request."""
    from tests.support.serving import serve_in_thread

    recorder = Recorder()
    with serve_in_thread(recorder) as url:
        recorder.url = url
        yield recorder
    assert recorder.seen == [], f"an internal host was reached: {recorder.seen}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Vault]]:
    engine = create_store_engine(f"sqlite:///{tmp_path_factory.mktemp('ssrf') / 'inlet.db'}")
    migrate(engine)
    add_tenant(engine, "acme")
    yield engine, Vault(SecretStr(Fernet.generate_key().decode()))
    engine.dispose()


def url_parameters(app: str) -> list[str]:
    return sorted(name for name, rule in load(app)[0].parameters.items() if rule.is_url)


def text_parameters(app: str) -> list[str]:
    return sorted({name for name, rule in load(app)[0].parameters.items() if not rule.is_url} | RESERVED_PARAMETERS)


def credentials(app: str) -> dict[str, SecretStr]:
    spec = load(app)[0]
    return {key: SecretStr("secret-value") for key in spec.auth.required_keys()}


async def first_request(connector: Connector) -> None:
    async for _ in connector.pages(connector.spec.collection_for("users")):
        return


def refused_at_add(store: tuple[Engine, Vault], app: str, parameters: dict[str, str]) -> bool:
    engine, vault = store
    try:
        add_connection(
            engine, vault, tenant_id="acme", connection_id=f"x-{app}", app=app, parameters=parameters,
            credentials=credentials(app), replace=True, egress=STRICT,
        )  # fmt: skip
    except ConfigError:
        return True
    return False


async def refused_at_run(app: str, parameters: dict[str, str]) -> str:
    """How a run refuses the parameters: at the parameter check or at the egress guard ("" if it did not)."""
    try:
        connector = open_connector(app, parameters=parameters, credentials=credentials(app), egress=STRICT, retry=ONCE)
    except InvalidParameter:
        return "parameter"
    async with connector:
        try:
            await first_request(connector)
        except EgressRefused:
            return "egress"
    return ""


@pytest.mark.parametrize(("what", "host"), ATTACKS, ids=[what for what, _ in ATTACKS])
@pytest.mark.parametrize("app", APPS)
async def test_no_url_parameter_reaches_an_internal_host(
    app: str, what: str, host: str, listener: Recorder, store: tuple[Engine, Vault]
) -> None:
    port = listener.url.rsplit(":", 1)[1]
    for name in url_parameters(app):
        for scheme in ("http", "https"):
            parameters = {**VALID.get(app, {}), name: f"{scheme}://{host}:{port}"}
            assert refused_at_add(store, app, parameters), f"{app}.{name}={parameters[name]} was added"
            assert await refused_at_run(app, parameters), f"{app}.{name}={parameters[name]} was called"


@pytest.mark.parametrize("value", TRAVERSALS)
@pytest.mark.parametrize("app", APPS)
async def test_no_parameter_escapes_its_path_segment(app: str, value: str, store: tuple[Engine, Vault]) -> None:
    for name in text_parameters(app):
        parameters = {**VALID.get(app, {}), name: value}
        assert refused_at_add(store, app, parameters), f"{app}.{name}={value!r} was added"
        assert await refused_at_run(app, parameters) == "parameter", f"{app}.{name}={value!r} was used"
    if value in ("", "a/b"):  # as a URL's path these are plain: "<url>/", "<url>/a/b"
        return
    for name in url_parameters(app):
        parameters = {
            **VALID.get(app, {}),
            name: f"{load(app)[0].parameters[name].default or VALID[app][name]}/{value}",
        }
        assert await refused_at_run(app, parameters) == "parameter", f"{app}.{name}={parameters[name]!r}"


def test_a_value_the_pattern_lets_through_is_still_one_path_segment() -> None:
    spec = ConnectorSpec.model_validate(
        {
            "name": "acme",
            "title": "Acme",
            "base_url": "https://api.acme.example/v1",
            "parameters": {"bucket": {"pattern": ".*"}},
            "collections": {"users": {"list": {"path": "/buckets/{bucket}/records"}}},
        }
    )
    paths = {
        value: httpx.URL(Connector(spec, parameters={"bucket": value}).first_request("users").url).raw_path.decode()
        for value in ("../../../stats?x=", "..", "a/b#c")
    }
    assert paths == {
        "../../../stats?x=": "/v1/buckets/..%2F..%2F..%2Fstats%3Fx%3D/records",
        "..": "/v1/buckets/%2E%2E/records",
        "a/b#c": "/v1/buckets/a%2Fb%23c/records",
    }


# -- the guard itself: after DNS, on redirects, pinned to what it checked -----------------------------------


@pytest.mark.parametrize(("what", "host"), ATTACKS, ids=[what for what, _ in ATTACKS])
async def test_the_guard_refuses_every_form_of_an_internal_address(what: str, host: str, listener: Recorder) -> None:
    port = listener.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(transport=guarded_transport(STRICT)) as client:
        # httpx itself refuses 0177.0.0.1; a resolver may know no `localhost.` (then nothing is reached either)
        with pytest.raises((EgressRefused, httpx.InvalidURL, httpx.ConnectError)) as refused:
            await client.get(f"http://{host}:{port}/latest/meta-data")
    if isinstance(refused.value, EgressRefused):
        assert "egress rule" in str(refused.value) and "INLET_EGRESS__ALLOW_HOSTS" in str(refused.value)
    elif isinstance(refused.value, httpx.ConnectError):
        assert "cannot resolve" in str(refused.value)


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["93.184.216.34", "10.0.0.1"], ["::1"], ["169.254.169.254"]])
async def test_an_apps_own_host_name_that_resolves_inside_is_refused(
    answer: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS says api.hubapi.com is internal (a poisoned resolver, a rebinding attack): the guard refuses it."""

    async def resolve(host: str, port: int) -> list[str]:
        return answer

    monkeypatch.setattr(egress, "resolve", resolve)
    async with open_connector("hubspot", credentials={"token": SecretStr("t")}, egress=STRICT) as hubspot:
        with pytest.raises(EgressRefused, match="api.hubapi.com is a .* address"):
            await first_request(hubspot)


async def test_the_guard_sends_to_the_address_it_checked(listener: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name the operator allows by address is pinned: the connection goes to the checked address, and the
    name stays in the Host header (no second DNS answer can move it)."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(egress, "resolve", resolve)
    served = Recorder()
    from tests.support.serving import serve_in_thread

    with serve_in_thread(served) as url:
        port = url.rsplit(":", 1)[1]
        policy = EgressPolicy(allow_hosts=frozenset({f"127.0.0.1:{port}"}))
        async with httpx.AsyncClient(transport=guarded_transport(policy)) as client:
            answer = await client.get(f"http://kinto.invalid:{port}/v1")
    assert answer.status_code == 200 and calls == ["kinto.invalid"]
    assert served.seen[0].headers["host"] == f"kinto.invalid:{port}"


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:{other}/", "http://169.254.169.254/latest", "http://2130706433:{other}/"]
)
async def test_a_redirect_to_an_internal_host_is_refused(target: str, recorders: Callable[..., Recorder]) -> None:
    other = recorders()
    port = other.url.rsplit(":", 1)[1]
    location = target.format(other=port)
    source = recorders(lambda seen, own: (302, {}, {"Location": location}))
    allowed = EgressPolicy(allow_hosts=frozenset({f"127.0.0.1:{source.url.rsplit(':', 1)[1]}"}))  # the first hop only
    async with httpx.AsyncClient(transport=guarded_transport(allowed), follow_redirects=True) as client:
        with pytest.raises(EgressRefused):
            await client.get(source.url + "/v1")
    parameters = {"base_url": source.url + "/v1"}
    async with open_connector(
        "kinto", parameters=parameters, credentials=credentials("kinto"), egress=allowed
    ) as kinto:
        with pytest.raises(MalformedPage):  # a connector never follows redirects: a 302 is no page
            await first_request(kinto)
    assert len(source.seen) == 2 and other.seen == []


def test_the_test_installation_allows_loopback_explicitly(tmp_path: Path) -> None:
    from inlet.settings import get_settings

    assert get_settings().egress.allow_hosts == ["127.0.0.1"]
