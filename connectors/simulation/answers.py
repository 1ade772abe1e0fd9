"""How a simulator answers: JSON bodies, and `Refusal`, an error raised anywhere in a handler.

* Refusal   a request the simulated app refuses; the simulator renders it in the app's own error format
            (`SimulatorBase.refusal`): status, the app's error code and message, extra body fields.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["Refusal", "json_response"]


class Refusal(Exception):
    """An error answer in the simulated app's format, e.g. `Refusal(400, "VALIDATION_ERROR", "limit > 100")`."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.details = details


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)
