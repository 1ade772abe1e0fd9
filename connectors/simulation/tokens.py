"""Opaque tokens the simulators hand out (page cursors, delta and sync tokens): base64url JSON, no padding."""

from __future__ import annotations

import base64
from typing import Any

import orjson

__all__ = ["decode_token", "encode_token"]


def encode_token(state: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def decode_token(token: str) -> Any:
    """What `encode_token` wrapped; None for anything it did not hand out."""
    try:
        return orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):  # binascii.Error and orjson.JSONDecodeError are ValueErrors
        return None
