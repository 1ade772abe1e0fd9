"""Property-based fuzzing of the receiver: any body with any headers gets an answer below 500, and only a
delivery signed with the connection's secret ever writes a row."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inlet.store import inbox
from tests.security.conftest import GRAPH, HUBSPOT, HUBSPOT_SECRET, PIPEDRIVE, ZENDESK, ZENDESK_SECRET, Hub
from tests.security.deliveries import Delivery

ROUTES = [HUBSPOT, ZENDESK, GRAPH, PIPEDRIVE, "/webhooks/hubspot", "/webhooks/zendesk", "/webhooks/nosuch/a/b"]
HEADER_NAMES = [
    "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp", "X-HubSpot-Signature", "X-HubSpot-Signature-Version",
    "X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp", "Authorization", "Content-Type",
    "Content-Length", "X-Replay-Signature",
]  # fmt: skip
_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
HEADERS = st.lists(
    st.tuples(st.sampled_from(HEADER_NAMES) | st.from_regex(r"\AX-[A-Za-z-]{1,20}\Z"), _VALUE), max_size=6
).map(lambda pairs: [(k, v) for k, v in pairs if k.lower() != "content-length"])  # the client sets the length
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
BODIES = st.binary(max_size=600) | JSONISH.map(lambda value: json.dumps(value).encode())
# No deadline and no speed health check: the CI machine is shared; the fixture's store is checked per example.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _rows(hub: Hub) -> int:
    """Inbox rows and receipts: everything a call can write."""
    return inbox.depth(hub.engine) + hub.receipts()


@FUZZ
@given(route=st.sampled_from(ROUTES), body=BODIES, headers=HEADERS)
def test_an_unsigned_call_never_gets_a_5xx_or_writes_a_row(
    hub: Hub, route: str, body: bytes, headers: list[tuple[str, str]]
) -> None:
    answer = hub.post(Delivery(route, body, tuple(headers)))
    assert answer.status_code in (400, 401, 404, 413), answer.text
    assert _rows(hub) == 0 and hub.heard == []


@FUZZ
@given(body=BODIES, app=st.sampled_from(["hubspot-v1", "zendesk"]), extra=HEADERS)
def test_a_signed_call_of_any_shape_never_gets_a_5xx(
    hub: Hub, body: bytes, app: str, extra: list[tuple[str, str]]
) -> None:
    own = [(k, v) for k, v in extra if not k.lower().startswith(("x-hubspot", "x-zendesk"))]  # keep its signature
    before = _rows(hub)
    answer = hub.post(_signed(app, body).with_headers(*own))
    assert answer.status_code in (200, 400, 401), answer.text
    if answer.status_code != 200:
        assert _rows(hub) == before


def _signed(app: str, body: bytes) -> Delivery:
    if app == "hubspot-v1":
        signature = hashlib.sha256(HUBSPOT_SECRET.encode() + body).hexdigest()
        return Delivery(HUBSPOT, body, (("X-HubSpot-Signature", signature),))
    stamp = "2027-01-15T08:00:00Z"  # the fixture's clock: NOW
    digest = hmac.new(ZENDESK_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return Delivery(ZENDESK, body, (("X-Zendesk-Webhook-Signature", base64.b64encode(digest).decode()),
                                    ("X-Zendesk-Webhook-Signature-Timestamp", stamp)))  # fmt: skip


@pytest.mark.parametrize("app", ["hubspot-v1", "zendesk"])
def test_the_fuzzers_signature_is_a_valid_one(hub: Hub, app: str) -> None:
    """The signed property above means something only if its signatures pass: one known-good event each."""
    body = {
        "hubspot-v1": b'[{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 5}]',
        "zendesk": b'{"id": "z1", "type": "zen:event-type:user.created", "detail": {"id": "5"}}',
    }[app]
    assert hub.post(_signed(app, body)).json() == {"accepted": 1, "duplicates": 0}
