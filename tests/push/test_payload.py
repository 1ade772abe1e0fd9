"""A push from the team's app is checked before anything is kept."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inlet.push import PushRequest, change_id


@pytest.mark.parametrize(
    "body",
    [
        {"tenant": "acme", "data_source": "users", "changes": []},
        {"tenant": "Acme!", "data_source": "users", "changes": [{"app_id": "1", "type": "deleted"}]},
        {"tenant": "acme", "data_source": "users", "changes": [{"app_id": "1", "type": "updated"}]},
        {"tenant": "acme", "data_source": "users", "changes": [{"app_id": "1", "type": "deleted", "record": {}}]},
        {"tenant": "acme", "data_source": "users", "changes": [{"app_id": "", "type": "deleted"}]},
        {"tenant": "acme", "data_source": "users", "changes": [{"app_id": "1", "type": "moved"}]},
        {"tenant": "acme", "data_source": "users", "extra": 1, "changes": [{"app_id": "1", "type": "deleted"}]},
        {
            "tenant": "acme",
            "data_source": "users",
            "changes": [{"app_id": "1", "type": "deleted", "occurred_at": "yesterday"}],
        },
    ],
)
def test_a_malformed_push_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PushRequest.model_validate(body)


def test_the_change_id_is_the_apps_then_the_messages_then_the_contents() -> None:
    request = PushRequest.model_validate(
        {
            "tenant": "acme",
            "data_source": "users",
            "changes": [
                {"app_id": "1", "type": "updated", "record": {"a": 1}, "change_id": "c-9"},
                {"app_id": "2", "type": "updated", "record": {"a": 1}},
            ],
        }
    )
    first, second = request.changes
    assert change_id(first, "msg_1", 0) == "c-9"
    assert change_id(second, "msg_1", 1) == "msg_1#1"
    assert change_id(second, None, 1) == change_id(second, None, 5)
