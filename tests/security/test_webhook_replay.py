"""Webhook replays, as issue 16 found them: a replay is the same body or the same event ids, whatever its
headers say, and a timestamp counts only within five minutes of now, either way."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inlet.store import inbox
from tests.security.conftest import (
    GRAPH,
    GRAPH_STATE,
    HUBSPOT,
    HUBSPOT_SECRET,
    NOW,
    PIPEDRIVE,
    PIPEDRIVE_BASIC,
    ZENDESK,
    ZENDESK_SECRET,
    Hub,
)
from tests.security.deliveries import (
    Delivery,
    graph,
    hubspot_events,
    hubspot_v1,
    hubspot_v3,
    pipedrive,
    zendesk,
)

BASE = "http://testserver"
DELETION = hubspot_events(("deletion", 501))

DELIVERIES: dict[str, tuple[str, Callable[[], Delivery]]] = {
    "hubspot-v3": ("acme-hubspot", lambda: hubspot_v3(BASE, HUBSPOT, HUBSPOT_SECRET, DELETION, NOW)),
    "hubspot-v1": ("acme-hubspot", lambda: hubspot_v1(HUBSPOT, HUBSPOT_SECRET, DELETION)),
    "zendesk": ("acme-zendesk", lambda: zendesk(ZENDESK, ZENDESK_SECRET, "01HZ-evt-1", 501, NOW)),
    "graph": ("acme-graph", lambda: graph(GRAPH, GRAPH_STATE, ["u-501"])),
    "pipedrive": ("acme-pipedrive", lambda: pipedrive(PIPEDRIVE, PIPEDRIVE_BASIC, {"id": "e-1", "entity_id": "501",
                                                                                  "action": "delete"})),
}  # fmt: skip


@pytest.mark.parametrize("app", DELIVERIES)
@pytest.mark.parametrize(
    "variant",
    [
        lambda d: d,
        lambda d: d.with_headers(("X-Replay-Signature", "1")),
        lambda d: d.with_headers(("X-Request-Timestamp", "1"), ("Authorization-Extra", "x")),
        lambda d: d.reordered(),
    ],
    ids=["as-captured", "extra-signature-header", "extra-timestamp-headers", "reordered-recased"],
)
def test_a_replayed_deletion_is_refused_whatever_its_headers(
    hub: Hub, app: str, variant: Callable[[Delivery], Delivery]
) -> None:
    connection, make = DELIVERIES[app]
    captured = make()
    assert hub.post(captured).json() == {"accepted": 1, "duplicates": 0}
    replay = hub.post(variant(captured))
    assert (replay.status_code, replay.json()) == (401, {"error": "replayed"})
    assert len(hub.inbox(connection)) == 1 and len(hub.heard) == 1


@pytest.mark.parametrize("app", DELIVERIES)
def test_a_replay_after_its_events_were_applied_is_still_refused(hub: Hub, app: str) -> None:
    connection, make = DELIVERIES[app]
    hub.post(make())
    with hub.engine.begin() as db:  # what the incremental import does once it applied them
        inbox.remove(db, [row.id for row in inbox.pending(hub.engine, connection, 100)])
    assert hub.post(make().with_headers(("X-Replay-Signature", "1"))).status_code == 401
    assert hub.inbox(connection) == []


def test_hubspot_re_signing_the_same_body_is_a_replay(hub: Hub) -> None:
    assert hub.post(hubspot_v3(BASE, HUBSPOT, HUBSPOT_SECRET, DELETION, NOW)).status_code == 200
    resigned = hub.post(hubspot_v3(BASE, HUBSPOT, HUBSPOT_SECRET, DELETION, NOW + 60))
    assert (resigned.status_code, resigned.json()) == (401, {"error": "replayed"})


def test_a_signature_without_a_timestamp_is_refused_a_day_later_within_the_retention(hub: Hub) -> None:
    assert hub.post(hubspot_v1(HUBSPOT, HUBSPOT_SECRET, DELETION)).status_code == 200
    hub.clock.now = NOW + 86_000
    assert hub.post(hubspot_v1(HUBSPOT, HUBSPOT_SECRET, DELETION)).status_code == 401
    assert hub.inbox("acme-hubspot") == [("deleted", "501")]


@pytest.mark.parametrize("skew", [301, 86_400 * 365, -301, -86_400 * 365])
def test_a_timestamp_more_than_five_minutes_from_now_either_way_is_refused(hub: Hub, skew: int) -> None:
    signed = [
        hubspot_v3(BASE, HUBSPOT, HUBSPOT_SECRET, DELETION, NOW + skew),
        zendesk(ZENDESK, ZENDESK_SECRET, "01HZ-evt-2", 502, NOW + skew),
    ]
    for delivery in signed:
        refused = hub.post(delivery)
        assert refused.status_code == 401 and (
            "old" in refused.text or "future" in refused.text or "from now" in refused.text
        )
    assert hub.inbox("acme-hubspot") == [] and hub.inbox("acme-zendesk") == [] and hub.receipts() == 0


@pytest.mark.parametrize("skew", [299, -299])
def test_a_timestamp_within_five_minutes_either_way_is_taken(hub: Hub, skew: int) -> None:
    assert hub.post(hubspot_v3(BASE, HUBSPOT, HUBSPOT_SECRET, DELETION, NOW + skew)).status_code == 200


def test_an_event_id_seen_before_in_another_body_is_a_replay(hub: Hub) -> None:
    """Pipedrive signs nothing but Basic credentials: a captured call can be edited; its event id stays."""
    meta = {"id": "e-7", "entity_id": "701", "action": "delete"}
    assert hub.post(pipedrive(PIPEDRIVE, PIPEDRIVE_BASIC, meta)).status_code == 200
    edited = hub.post(pipedrive(PIPEDRIVE, PIPEDRIVE_BASIC, {**meta, "timestamp": "2030-01-01T00:00:00Z"}))
    assert (edited.status_code, edited.json()) == (401, {"error": "replayed"})
    assert hub.inbox("acme-pipedrive") == [("deleted", "701")]


def test_a_delivery_with_new_and_seen_events_keeps_only_the_new(hub: Hub) -> None:
    first = hubspot_events(("creation", 801), ("creation", 802), first_event=800)
    both = hubspot_events(("creation", 801), ("creation", 802), ("creation", 803), first_event=800)
    assert hub.post(hubspot_v3(BASE, HUBSPOT, HUBSPOT_SECRET, first, NOW)).json()["accepted"] == 2
    assert hub.post(hubspot_v3(BASE, HUBSPOT, HUBSPOT_SECRET, both, NOW)).json() == {"accepted": 1, "duplicates": 2}
    assert [i for _, i in hub.inbox("acme-hubspot")] == ["801", "802", "803"]


def test_the_same_event_at_another_connection_is_its_own(hub: Hub) -> None:
    """Receipts are scoped to the connection: tenants cannot block each other's deliveries."""
    meta = {"id": "e-9", "entity_id": "901", "action": "change"}
    assert hub.post(pipedrive(PIPEDRIVE, PIPEDRIVE_BASIC, meta)).status_code == 200
    assert hub.post(hubspot_v1(HUBSPOT, HUBSPOT_SECRET, hubspot_events(("creation", 901)))).status_code == 200


def test_receipts_are_forgotten_after_the_retention_only(hub: Hub) -> None:
    hub.post(hubspot_v1(HUBSPOT, HUBSPOT_SECRET, DELETION))
    kept = hub.receipts()
    hub.clock.now = NOW + 86_400 - 1  # a delivery within the retention forgets nothing
    hub.post(hubspot_v1(HUBSPOT, HUBSPOT_SECRET, hubspot_events(("creation", 1), first_event=1)))
    assert hub.receipts() == kept + 2
    hub.clock.now = NOW + 2 * 86_400 + 3600  # the next one, past it, forgets the older receipts
    hub.post(hubspot_v1(HUBSPOT, HUBSPOT_SECRET, hubspot_events(("creation", 2), first_event=2)))
    assert hub.receipts() == 2
