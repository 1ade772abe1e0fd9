"""Writes to every SaaS simulator through the connectors' `writes:` (issue 20): create → read back, update,
delete, a validation error, a stale etag where the app has etags, a 429 honoured, each write in the app's change
feed, and credentials only ever sent to the connection's origin.

The simulators run in process (ASGI) like the contract suite; a `Recorder` transport keeps every request.
"""

from __future__ import annotations

import email.utils
import types
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import connectors.writes as writes_module
from connectors import Connector, WriteConflict, WriteOp, WriteRejected, pull_changes, write
from connectors.errors import RequestRejected
from connectors.registry import make_simulator, open_connector
from connectors.simulation import SimulatorBase
from connectors.spec import RetryPolicy
from tests.support.oauth import SIMULATOR_EGRESS

FAST_RETRY = RetryPolicy(attempts=4, backoff_seconds=0, max_backoff_seconds=0, max_wait_seconds=3600)
BASE = "https://simulator.test"
NEW_EMAIL = "new.person@example.org"  # every profile creates this person


@dataclass(frozen=True)
class Profile:
    """How one app's records are written and read back in these tests."""

    collection: str
    create: Mapping[str, object]
    update: Mapping[str, object]
    invalid: Mapping[str, object]
    email: Callable[[Mapping[str, Any]], Any]  # the email of a raw record as the app serves it
    updated: Callable[[Mapping[str, Any]], Any]  # the updated field of a raw record
    etag_of: Callable[[Mapping[str, Any]], str] | None = None  # a read record's etag (None: the app has none)
    soft_delete: bool = False  # a deleted record stays readable (inactive)
    throttle_wait: float | None = 7.0  # the wait a 429 asks for (injected Retry-After: 7); None: backoff
    store: Callable[[Any], Any] = lambda sim: sim  # where the written records live (ids, find, update)
    extra: dict[str, Any] = field(default_factory=dict)


def http_date(salesforce_time: str) -> str:
    """Salesforce's `2024-01-01T00:00:00.000+0000` as the HTTP date If-Unmodified-Since takes."""
    moment = datetime.strptime(salesforce_time, "%Y-%m-%dT%H:%M:%S.%f%z")
    return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)


PROFILES: dict[str, Profile] = {
    "google_people": Profile(
        "contacts",
        {"names": [{"givenName": "New", "familyName": "Person"}], "emailAddresses": [{"value": NEW_EMAIL}]},
        {"organizations": [{"name": "Acme", "title": "CTO"}]},
        {"emailAddresses": "not a list"},
        email=lambda r: next(e["value"] for e in r["emailAddresses"] if e["metadata"].get("primary")),
        updated=lambda r: r["organizations"][0]["title"],
        etag_of=lambda r: r["etag"],
        throttle_wait=None,  # 429 RESOURCE_EXHAUSTED without Retry-After (RetryInfo is a switch): backoff
    ),
    "hubspot": Profile(
        "contacts",
        {"email": "new.person@example.org", "firstname": "New", "lastname": "Person"},
        {"jobtitle": "CTO"},
        {"email": "not an email"},
        email=lambda r: r["properties"]["email"],
        updated=lambda r: r["properties"].get("jobtitle"),
        throttle_wait=10.0,  # one TEN_SECONDLY_ROLLING window, from the policy named in the 429's body
    ),
    "salesforce": Profile(
        "contacts",
        {"Email": "new.person@example.org", "FirstName": "New", "LastName": "Person"},
        {"Title": "CTO"},
        {"Email": "not an email"},
        email=lambda r: r["Email"],
        updated=lambda r: r["Title"],
        etag_of=lambda r: http_date(r["LastModifiedDate"]),
        throttle_wait=None,  # 403 REQUEST_LIMIT_EXCEEDED, no Retry-After: backoff
    ),
    "msgraph": Profile(
        "contacts",
        {"givenName": "New", "surname": "Person", "emailAddresses": [{"address": NEW_EMAIL, "name": "New Person"}]},
        {"jobTitle": "CTO"},
        {"emailAddresses": "not a list"},
        email=lambda r: r["emailAddresses"][0]["address"],
        updated=lambda r: r["jobTitle"],
        etag_of=lambda r: r["@odata.etag"],
        store=lambda sim: sim.contacts,
    ),
    "pipedrive": Profile(
        "persons",
        {"name": "New Person", "emails": [{"value": NEW_EMAIL, "primary": True, "label": "work"}]},
        {"job_title": "CTO"},
        {"name": ""},
        email=lambda r: r["emails"][0]["value"],
        updated=lambda r: r["job_title"],
    ),
    "zendesk": Profile(
        "users",
        {"email": NEW_EMAIL, "name": "New Person"},
        {"user_fields": {"title": "CTO"}},
        {"email": "not an email"},
        email=lambda r: r["email"],
        updated=lambda r: r["user_fields"]["title"],
        soft_delete=True,
    ),
}
APPS = sorted(PROFILES)
pytestmark = pytest.mark.parametrize("app", APPS)


class Recorder(httpx.AsyncBaseTransport):
    """The simulator's ASGI app, keeping (method, url, authorization) of every request it is sent."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.sent: list[tuple[str, httpx.URL, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url, request.headers.get("authorization")))
        return await self.inner.handle_async_request(request)


@dataclass
class Setup:
    sim: SimulatorBase
    connector: Connector
    recorder: Recorder
    profile: Profile

    @property
    def store(self) -> Any:
        """The written records' side of the simulator: ids(), find(id), update(ids)."""
        return self.profile.store(self.sim)


@pytest.fixture
async def setup(app: str) -> AsyncIterator[Setup]:
    sim = make_simulator(app, 5)
    parameters, credentials = sim.connection(BASE)
    recorder = Recorder(sim.app)
    connector = open_connector(
        app,
        parameters=parameters,
        credentials=credentials,
        transport=recorder,
        retry=FAST_RETRY,
        egress=SIMULATOR_EGRESS,
    )
    try:
        yield Setup(sim, connector, recorder, PROFILES[app])
    finally:
        await connector.aclose()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the write loop chose between retries; the sleeping itself is skipped."""
    recorded: list[float] = []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(writes_module, "asyncio", types.SimpleNamespace(sleep=sleep))
    return recorded


async def create(s: Setup, key: str = "op-1") -> str:
    result = await write(s.connector, WriteOp("create", s.profile.collection, None, s.profile.create, key))
    return result.external_id


async def test_create_reads_back_and_is_marked_as_an_api_write(app: str, setup: Setup) -> None:
    s = setup
    fields = {**s.profile.create, "not_a_field_of_the_app": "x"}
    before = len(s.store.ids())
    result = await write(s.connector, WriteOp("create", s.profile.collection, None, fields, "op-1"))
    assert result.dropped == ("not_a_field_of_the_app",)
    record = await s.connector.get(s.profile.collection, result.external_id)
    assert record is not None and s.profile.email(record) == NEW_EMAIL
    person = s.store.find(result.external_id)
    assert person is not None and person.modified_by is not None and len(s.store.ids()) == before + 1


async def test_update_changes_only_the_written_fields(app: str, setup: Setup) -> None:
    s = setup
    target = s.store.ids()[1]
    before = await s.connector.get(s.profile.collection, target)
    assert before is not None
    etag = await current_etag(s, target)
    await write(s.connector, WriteOp("update", s.profile.collection, target, s.profile.update, "op-2", etag=etag))
    after = await s.connector.get(s.profile.collection, target)
    assert after is not None
    assert s.profile.updated(after) == "CTO"  # every profile's update sets the job title
    assert s.profile.email(after) == s.profile.email(before)


async def test_delete_removes_the_record(app: str, setup: Setup) -> None:
    s = setup
    target = s.store.ids()[2]
    etag = await current_etag(s, target)
    await write(s.connector, WriteOp("delete", s.profile.collection, target, {}, "op-3", etag=etag))
    person = s.store.find(target)
    assert person is not None and person.deleted and target not in s.store.ids()
    if not s.profile.soft_delete:
        assert await s.connector.get(s.profile.collection, target) is None


async def test_each_write_shows_in_the_change_feed(app: str, setup: Setup) -> None:
    s = setup
    first = await pull_changes(s.connector, s.profile.collection)
    s.sim.advance(2)
    new_id = await create(s)
    target = s.store.ids()[0]
    etag = await current_etag(s, target)
    await write(s.connector, WriteOp("update", s.profile.collection, target, s.profile.update, "op-4", etag=etag))
    s.sim.advance(2)
    later = await pull_changes(s.connector, s.profile.collection, first.since)
    assert {new_id, target} <= {c.external_id for c in later.changes}


async def test_a_validation_error_is_write_rejected_and_writes_nothing(app: str, setup: Setup) -> None:
    s = setup
    fields = {**s.profile.create, **s.profile.invalid}
    before = s.store.ids()
    with pytest.raises(WriteRejected) as info:
        await write(s.connector, WriteOp("create", s.profile.collection, None, fields, "op-5"))
    assert info.value.app_message and info.value.status in (400, 422)
    assert s.store.ids() == before


async def test_a_429_is_waited_out_and_the_create_happens_once(app: str, setup: Setup, waits: list[float]) -> None:
    s = setup
    s.sim.inject(status_429=2, retry_after=7)
    before = len(s.store.ids())
    new_id = await create(s)
    assert len(waits) == 2
    if s.profile.throttle_wait is not None:
        assert waits == [s.profile.throttle_wait] * 2
    assert len(s.store.ids()) == before + 1 and new_id in s.store.ids()


async def test_a_stale_etag_is_a_conflict_and_without_etags_the_last_write_wins(app: str, setup: Setup) -> None:
    s = setup
    target = s.store.ids()[3]
    stale = await current_etag(s, target)
    s.sim.advance(5)
    s.store.update([target])  # someone else changes it in the app
    op = WriteOp("update", s.profile.collection, target, s.profile.update, "op-6", etag=stale)
    if s.profile.etag_of is not None:
        with pytest.raises(WriteConflict):
            await write(s.connector, op)
        return
    await write(s.connector, op)  # no concurrency control for this object: the later write wins
    after = await s.connector.get(s.profile.collection, target)
    assert after is not None and s.profile.updated(after) == "CTO"


async def test_credentials_go_only_to_the_connection_origin(app: str, setup: Setup) -> None:
    s = setup
    new_id = await create(s)
    for hostile in ("//evil.test/x", "@evil.test", "..%2F..%2Fevil"):
        with pytest.raises(RequestRejected):  # refused by the id pattern, or a 404 of the origin
            await write(s.connector, WriteOp("update", s.profile.collection, hostile, s.profile.update, "op-7"))
    await write(
        s.connector, WriteOp("delete", s.profile.collection, new_id, {}, "op-8", etag=await current_etag(s, new_id))
    )
    assert s.recorder.sent
    for _, url, _ in s.recorder.sent:
        assert (url.scheme, url.host) == ("https", "simulator.test"), url


async def current_etag(s: Setup, external_id: str) -> str | None:
    """The record's etag as a read gives it (None where the app has none)."""
    if s.profile.etag_of is None:
        return None
    record = await s.connector.get(s.profile.collection, external_id)
    assert record is not None
    return s.profile.etag_of(record)
