"""Tests for Standard Webhooks signing and verification."""

from __future__ import annotations

import re
import time

import pytest
from standardwebhooks.webhooks import Webhook

from inlet.delivery import generate_secret, sign_headers, verify
from inlet.errors import SignatureError

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = 1_700_000_000
BODY = b'{"tenant": "acme", "events": []}'


def _signed(*secrets: str, body: bytes = BODY, timestamp: int = NOW) -> dict[str, str]:
    return sign_headers(secrets, msg_id="msg_1", timestamp=timestamp, body=body)


def test_generated_secret_is_whsec_base64_of_32_bytes() -> None:
    secret = generate_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert secret != generate_secret()


def test_matches_published_test_vector() -> None:
    headers = sign_headers([VECTOR_SECRET], msg_id=VECTOR_ID, timestamp=VECTOR_TS, body=VECTOR_BODY)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    verify([VECTOR_SECRET], headers, VECTOR_BODY, now=VECTOR_TS)


def test_round_trip_verifies() -> None:
    secret = generate_secret()
    verify([secret], _signed(secret), BODY, now=NOW)


def test_library_accepts_our_signature() -> None:
    secret = generate_secret()
    headers = _signed(secret, timestamp=int(time.time()))
    assert Webhook(secret).verify(BODY, headers) == {"tenant": "acme", "events": []}


def test_two_secrets_give_two_signatures_and_each_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    headers = _signed(old, new)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify([old], headers, BODY, now=NOW)
    verify([new], headers, BODY, now=NOW)
    verify([generate_secret(), new], headers, BODY, now=NOW)


def test_tampered_body_is_rejected() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify([secret], _signed(secret), BODY.replace(b"acme", b"evil"), now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify([generate_secret()], _signed(generate_secret()), BODY, now=NOW)


@pytest.mark.parametrize(("offset", "word"), [(-301, "stale"), (301, "future")])
def test_timestamp_outside_tolerance_is_rejected(offset: int, word: str) -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match=word):
        verify([secret], _signed(secret, timestamp=NOW + offset), BODY, now=NOW)


def test_timestamp_inside_custom_tolerance_is_accepted() -> None:
    secret = generate_secret()
    verify([secret], _signed(secret, timestamp=NOW - 3000), BODY, tolerance_seconds=3600, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing: str) -> None:
    secret = generate_secret()
    headers = {k: v for k, v in _signed(secret).items() if k != missing}
    with pytest.raises(SignatureError, match=f"missing {missing} header"):
        verify([secret], headers, BODY, now=NOW)


def test_header_names_are_case_insensitive() -> None:
    secret = generate_secret()
    headers = {k.title(): v for k, v in _signed(secret).items()}
    verify([secret], headers, BODY, now=NOW)


def test_malformed_signature_entries_are_skipped() -> None:
    secret = generate_secret()
    headers = _signed(secret)
    headers["webhook-signature"] = "garbage v1,!!! v2,abc " + headers["webhook-signature"]
    verify([secret], headers, BODY, now=NOW)


def test_non_integer_timestamp_is_rejected() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match="integer unix seconds"):
        verify([secret], {**_signed(secret), "webhook-timestamp": "soon"}, BODY, now=NOW)


def test_secret_never_appears_in_errors() -> None:
    secret = generate_secret()
    key = secret.removeprefix("whsec_")
    for secrets, body in [([secret], b"tampered"), (["whsec_" + key[:-3]], BODY)]:
        with pytest.raises(ValueError) as caught:
            verify(secrets, _signed(generate_secret()), body, now=NOW)
        assert key[:10] not in str(caught.value) and key[:10] not in repr(caught.value)
        assert caught.value.__cause__ is None


def test_no_secrets_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        verify([], _signed(generate_secret()), BODY, now=NOW)
