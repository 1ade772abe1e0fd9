"""HubSpot signals its rate limits in the 429 body (`policyName`), not in Retry-After; YAML cannot read that."""

from __future__ import annotations

import httpx
import orjson

__all__ = ["retry_after"]

_DAY_SECONDS = 86_400.0


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429, from the policy named in the body (as HubSpot's own SDK does).

    TEN_SECONDLY_ROLLING waits one window (from X-HubSpot-RateLimit-Interval-Milliseconds, default 10 s);
    the search "secondly" limit waits 1 s; DAILY waits a day, longer than any in-process retry.
    """
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("policyName") == "DAILY":
        return _DAY_SECONDS
    if body.get("policyName") == "TEN_SECONDLY_ROLLING":
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
        return int(interval) / 1000 if interval.isdigit() else 10.0
    if "secondly" in str(body.get("message", "")):
        return 1.0
    return None
