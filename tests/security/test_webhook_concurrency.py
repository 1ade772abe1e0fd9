"""Concurrent copies of one delivery, over real loopback HTTP to receivers on uvicorn sharing one store: one
copy gets 200, every other 401 "replayed"; no copy gets a 5xx from a race on the receipt's key."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from sqlalchemy import Engine

from inlet.receiver import create_receiver
from inlet.store import inbox
from tests.security.conftest import NOW, PIPEDRIVE, PIPEDRIVE_BASIC, ZENDESK, ZENDESK_SECRET, Clock, seed
from tests.security.deliveries import Delivery, pipedrive, zendesk
from tests.support.serving import serve_in_thread

COPIES = 48


@pytest.fixture
def receivers(either_store: Engine) -> Iterator[list[str]]:
    """Two receivers on the same store, as two `inlet serve` processes behind one load balancer would be."""
    vault = seed(either_store)
    with ExitStack() as servers:
        yield [
            servers.enter_context(
                serve_in_thread(create_receiver(either_store, vault, lambda t, c: None, clock=Clock()))
            )
            for _ in range(2)
        ]


async def _post_all(bases: list[str], deliveries: list[Delivery]) -> list[int]:
    limits = httpx.Limits(max_connections=len(deliveries))
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        calls = [
            client.post(bases[n % len(bases)] + d.path, content=d.body, headers=list(d.headers))
            for n, d in enumerate(deliveries)
        ]
        return [response.status_code for response in await asyncio.gather(*calls)]


def test_concurrent_copies_of_one_delivery_get_one_200(either_store: Engine, receivers: list[str]) -> None:
    delivery = zendesk(ZENDESK, ZENDESK_SECRET, "01HZ-race", 4242, NOW)
    statuses = asyncio.run(_post_all(receivers, [delivery] * COPIES))
    assert Counter(statuses) == {200: 1, 401: COPIES - 1}
    assert [row.external_id for row in inbox.pending(either_store, "acme-zendesk", 100)] == ["4242"]


def test_concurrent_bodies_with_one_event_id_get_one_200(either_store: Engine, receivers: list[str]) -> None:
    """Edited copies of a Pipedrive call (nothing signs its body) race on the event id instead of the body."""
    copies = [
        pipedrive(PIPEDRIVE, PIPEDRIVE_BASIC, {"id": "e-race", "entity_id": "77", "action": "delete", "n": n})
        for n in range(COPIES)
    ]
    statuses = asyncio.run(_post_all(receivers, copies))
    assert Counter(statuses) == {200: 1, 401: COPIES - 1}
    assert inbox.depth(either_store, "acme-pipedrive") == 1


def test_concurrent_distinct_deliveries_are_all_taken(either_store: Engine, receivers: list[str]) -> None:
    deliveries = [zendesk(ZENDESK, ZENDESK_SECRET, f"01HZ-{n}", 5000 + n, NOW) for n in range(COPIES)]
    statuses = asyncio.run(_post_all(receivers, deliveries))
    assert Counter(statuses) == {200: COPIES}
    assert inbox.depth(either_store, "acme-zendesk") == COPIES
