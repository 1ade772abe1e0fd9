"""Tests for the demo app that receives inlet deliveries."""

from __future__ import annotations

import json
import pathlib
import sqlite3
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient prefers the httpx2 fork; plain httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from inlet.delivery import generate_secret, sign_headers
from inlet.demo import create_demo_app

SECRET = generate_secret()
PATH = "/inlet/events"
SCOPE = {"tenant": "acme", "connection": "acme-hubspot", "data_source": "users"}


@pytest.fixture
def client(tmp_path: pathlib.Path) -> Iterator[TestClient]:
    """The demo app over `tmp_path / "app.db"`."""
    with TestClient(create_demo_app(tmp_path / "app.db", [SECRET])) as test_client:
        yield test_client


def event(external_id: str, type_: str = "created", key: str | None = None, **record: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt_{key or external_id}",
        "type": type_,
        "external_id": external_id,
        "record": None if type_ == "deleted" else record,
        "source_updated_at": "2026-11-24T17:24:49.524Z",
        "idempotency_key": key or f"key-{external_id}-{type_}",
    }


def post(client: TestClient, *events: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    body = json.dumps({**SCOPE, "events": list(events)}).encode()
    return post_raw(client, body, secret)


def post_raw(client: TestClient, body: bytes, secret: str = SECRET) -> httpx.Response:
    headers = sign_headers([secret], msg_id="msg_1", timestamp=int(time.time()), body=body)
    response: httpx.Response = client.post(PATH, content=body, headers=headers)
    return response


def records(client: TestClient, include_deleted: int = 0) -> list[dict[str, Any]]:
    response = client.get("/records", params={"tenant": "acme", "include_deleted": include_deleted})
    result: list[dict[str, Any]] = response.json()
    return result


def test_signed_batch_is_applied_and_listed(client: TestClient) -> None:
    response = post(client, event("1", email="ada@example.org"), event("2", email="bob@example.org"))
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0}
    assert records(client) == [
        {**SCOPE, "external_id": "1", "record": {"email": "ada@example.org"}, "deleted": False},
        {**SCOPE, "external_id": "2", "record": {"email": "bob@example.org"}, "deleted": False},
    ]


def test_bad_signature_is_401_and_stores_nothing(client: TestClient) -> None:
    response = post(client, event("1", email="ada@example.org"), secret=generate_secret())
    assert response.status_code == 401
    assert "signature" in response.json()["error"]
    assert records(client, include_deleted=1) == []
    assert client.get("/stats").json()["rejected_signatures"] == 1


def test_replayed_batch_counts_duplicates_and_changes_nothing(client: TestClient) -> None:
    batch = (event("1", email="ada@example.org"), event("2", email="bob@example.org"))
    post(client, *batch)
    before = records(client)
    assert post(client, *batch).json() == {"accepted": 0, "duplicates": 2}
    assert records(client) == before
    stats = client.get("/stats").json()
    assert (stats["records"], stats["events_applied"], stats["duplicates"], stats["batches"]) == (2, 2, 2, 2)


def test_created_updated_deleted_ends_deleted(client: TestClient) -> None:
    post(client, event("1", "created", email="a@x.org"), event("1", "updated", email="b@x.org"))
    post(client, event("1", "deleted"))
    assert records(client) == []
    tombstone = {**SCOPE, "external_id": "1", "record": None, "deleted": True}
    assert records(client, include_deleted=1) == [tombstone]
    assert client.get("/stats").json()["deleted"] == 1


def test_revert_with_three_keys_applies_all_three(client: TestClient) -> None:
    a1, b, a2 = (event("1", "updated", f"k{n}", email=e) for n, e in enumerate(["a@x", "b@x", "a@x"]))
    assert post(client, a1, b, a2).json() == {"accepted": 3, "duplicates": 0}
    assert records(client)[0]["record"] == {"email": "a@x"}
    assert client.get("/stats").json()["events_applied"] == 3


def test_duplicate_key_within_one_batch_is_applied_once(client: TestClient) -> None:
    first, again = event("1", key="same", email="a@x"), event("1", key="same", email="b@x")
    assert post(client, first, again).json() == {"accepted": 1, "duplicates": 1}
    assert records(client)[0]["record"] == {"email": "a@x"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "Invalid JSON"),
        (json.dumps({**SCOPE, "events": [{"type": "created"}]}).encode(), "events.0"),
        (json.dumps({**SCOPE, "events": [event("1", "moved")]}).encode(), "events.0.type"),
        (json.dumps({**SCOPE, "events": [{**event("1"), "record": None}]}).encode(), "needs a record"),
    ],
)
def test_malformed_batch_is_400_with_a_message(client: TestClient, body: bytes, fragment: str) -> None:
    response = post_raw(client, body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert records(client, include_deleted=1) == []


def test_fault_knob_returns_503_with_retry_after_then_recovers(client: TestClient) -> None:
    client.post("/_demo/faults", json={"fail_next": 2, "status": 503, "retry_after": 2})
    for _ in range(2):
        response = post(client, event("1", email="a@x"))
        assert (response.status_code, response.headers["retry-after"]) == (503, "2")
    assert records(client) == []
    assert post(client, event("1", email="a@x")).json() == {"accepted": 1, "duplicates": 0}


def test_reset_clears_data_and_counters(client: TestClient) -> None:
    post(client, event("1", email="a@x"))
    assert client.post("/_demo/reset").status_code == 200
    assert records(client, include_deleted=1) == []
    assert set(client.get("/stats").json().values()) == {0}


def test_html_page_escapes_values(client: TestClient) -> None:
    post(client, event("<script>alert(1)</script>", name="<script>x</script>"))
    page = client.get("/")
    assert page.status_code == 200 and "<title>inlet demo app</title>" in page.text
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_health_is_ok(client: TestClient) -> None:
    assert client.get("/health").json() == {"ok": True}


def test_records_filter_by_tenant(client: TestClient) -> None:
    post(client, event("1", email="a@x"))
    other = client.get("/records", params={"tenant": "globex"})
    assert other.json() == [] and len(records(client)) == 1


def test_batch_of_1000_is_applied_in_one_post(client: TestClient) -> None:
    batch = [event(str(n), email=f"user{n}@example.org", name=f"User {n}") for n in range(1000)]
    assert post(client, *batch).json() == {"accepted": 1000, "duplicates": 0}
    assert len(records(client)) == 1000


def test_batch_is_applied_atomically(client: TestClient, tmp_path: pathlib.Path) -> None:
    with sqlite3.connect(tmp_path / "app.db") as db:  # the app's own database refuses the 700th record
        db.execute(
            "CREATE TRIGGER refuse_700 BEFORE INSERT ON records WHEN NEW.external_id = '700' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    batch = [event(str(n), email=f"user{n}@example.org") for n in range(1000)]
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        post(client, *batch)
    stats = client.get("/stats").json()
    assert records(client, include_deleted=1) == []
    assert (stats["events_applied"], stats["batches"], stats["requests"]) == (0, 0, 1)
    assert post(client, *batch[:700]).json() == {"accepted": 700, "duplicates": 0}  # no key was kept either
