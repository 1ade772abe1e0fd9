"""Standard Webhooks signing and verification for inlet's deliveries to the team's app.

Wire format (https://www.standardwebhooks.com): headers `webhook-id`, `webhook-timestamp` (unix seconds)
and `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")> v1,<...>`, where the
key is the base64-decoded part of a `whsec_<base64>` secret. Several signatures travel together while a
secret is rotated; a receiver accepts the message when any of its secrets matches any signature.

The `standardwebhooks` library decodes secrets and computes one v1 signature. It verifies against a
single secret only, with a fixed five-minute window read from the wall clock, and it raises bare
exceptions on malformed signature lists; those parts (several secrets, tolerance and clock injection,
tolerant header parsing) are written here by hand.

* ValueError
  + SignatureError    the request is not authentic or not fresh: answer 401 and change nothing
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from secrets import token_bytes
from time import time

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from inlet.errors import SignatureError

__all__ = ["generate_secret", "sign_headers", "verify"]

_SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32
_ID, _TIMESTAMP, _SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"


def generate_secret() -> str:
    """Return a fresh random secret as `whsec_<base64 of 32 bytes>`."""
    return _SECRET_PREFIX + base64.b64encode(token_bytes(_SECRET_BYTES)).decode("ascii")


def sign_headers(secrets: Sequence[str], *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Return the three Standard Webhooks headers, with one `v1` signature per secret."""
    if not secrets:
        raise ValueError("sign_headers needs at least one secret; create one with generate_secret()")
    signatures = " ".join(_sign(hook, msg_id, timestamp, body) for hook in _webhooks(secrets))
    return {_ID: msg_id, _TIMESTAMP: str(timestamp), _SIGNATURE: signatures}


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Check the headers against the raw body; raise `SignatureError` unless a secret signed it in time."""
    if not secrets:
        raise ValueError("verify needs at least one secret; configure the app's signing secret")
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id, timestamp = _required(lowered, _ID), _parse_timestamp(_required(lowered, _TIMESTAMP))
    passed = list(_v1_signatures(_required(lowered, _SIGNATURE)))
    _check_freshness(timestamp, tolerance_seconds, time() if now is None else now)
    for hook in _webhooks(secrets):
        expected = _decode(_sign(hook, msg_id, timestamp, body).partition(",")[2])
        # Stopping at the first match leaks nothing: each comparison itself is constant-time.
        if any(hmac.compare_digest(expected, signature) for signature in passed):
            return
    raise SignatureError("no webhook-signature matches any configured secret (tampered body or wrong secret)")


def _webhooks(secrets: Sequence[str]) -> list[Webhook]:
    try:
        return [Webhook(secret) for secret in secrets]
    except (binascii.Error, EmptyWebhookSecretError, RuntimeError):
        # `from None`: the library's error is dropped so no part of a secret can surface in a traceback.
        raise ValueError("a signing secret is not of the form whsec_<base64>") from None


def _sign(hook: Webhook, msg_id: str, timestamp: int, body: bytes) -> str:
    # The library signs text, encoding it back to UTF-8; a strict decode makes that round trip byte-exact.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("body is not valid UTF-8; Standard Webhooks signs UTF-8 text") from None
    signature: str = hook.sign(msg_id=msg_id, timestamp=datetime.fromtimestamp(timestamp, UTC), data=text)
    return signature


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _parse_timestamp(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SignatureError(f"{_TIMESTAMP} must be integer unix seconds, got {value[:32]!r}") from None


def _check_freshness(timestamp: int, tolerance_seconds: int, now: float) -> None:
    if timestamp < now - tolerance_seconds:
        raise SignatureError(
            f"stale {_TIMESTAMP}: {now - timestamp:.0f} s old, beyond the {tolerance_seconds} s tolerance"
        )
    if timestamp > now + tolerance_seconds:
        raise SignatureError(
            f"future {_TIMESTAMP}: {timestamp - now:.0f} s ahead, beyond the {tolerance_seconds} s tolerance"
        )


def _v1_signatures(header: str) -> Iterator[bytes]:
    """Yield decoded `v1` signatures; other versions and malformed entries are skipped, as the spec asks."""
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version == "v1" and (signature := _decode(encoded)):
            yield signature


def _decode(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b""
