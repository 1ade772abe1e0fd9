"""Google People: what connector.yaml cannot say about 429s."""

from __future__ import annotations

import re

import httpx
import orjson

__all__ = ["retry_after"]

_DELAY = re.compile(r"^(\d+(?:\.\d*)?)s$")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429, from a google.rpc.RetryInfo detail (`"retryDelay": "12.5s"`) in the body.

    Google sends no Retry-After on quota errors, and YAML cannot read a body. None (no RetryInfo, or a
    Retry-After header, which the runtime reads itself): back off exponentially with jitter, as Google advises.
    """
    if "Retry-After" in response.headers:
        return None
    try:
        details = orjson.loads(response.content).get("error", {}).get("details", [])
    except (orjson.JSONDecodeError, AttributeError):
        return None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
