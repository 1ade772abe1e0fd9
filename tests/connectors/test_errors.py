"""The error tree and the one function that turns an HTTP status into an exception."""

from __future__ import annotations

import httpx
import pytest

from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    MalformedPage,
    PaginationLimit,
    PaginationLoop,
    RequestRejected,
    RetryableError,
    SpecError,
    error_for_response,
    parse_retry_after,
    redact,
)

URL = "https://api.acme.example/v2/contacts?limit=100"


def answer(status: int, text: str = "", headers: dict[str, str] | None = None, url: str = URL) -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers, request=httpx.Request("GET", url))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RetryableError),
        (500, RetryableError),
        (502, RetryableError),
        (503, RetryableError),
        (504, RetryableError),
        (401, AuthError),
        (403, AuthError),
        (400, RequestRejected),
        (404, RequestRejected),
        (405, RequestRejected),
        (422, RequestRejected),
    ],
)
def test_status_maps_to_the_error_tree(status: int, kind: type[ConnectorError]) -> None:
    error = error_for_response(answer(status), connector="acme")
    assert type(error) is kind
    assert error.connector == "acme" and error.url == URL


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304])
def test_success_and_redirect_are_not_errors(status: int) -> None:
    assert error_for_response(answer(status), connector="acme") is None


@pytest.mark.parametrize(
    ("kind", "parent"),
    [
        (RetryableError, ConnectorError),
        (FatalError, ConnectorError),
        (AuthError, FatalError),
        (RequestRejected, FatalError),
        (MalformedPage, FatalError),
        (PaginationLoop, FatalError),
        (PaginationLimit, FatalError),
        (SpecError, ValueError),
    ],
)
def test_error_tree(kind: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(kind, parent)


def test_retryable_and_fatal_are_separate_branches() -> None:
    assert not issubclass(RetryableError, FatalError)
    assert not issubclass(AuthError, RetryableError)


def test_429_carries_retry_after_seconds() -> None:
    error = error_for_response(answer(429, headers={"Retry-After": "7"}), connector="acme")
    assert isinstance(error, RetryableError) and error.retry_after == 7.0
    assert "will retry after 7.0s" in str(error)


def test_503_carries_retry_after_too() -> None:
    error = error_for_response(answer(503, headers={"Retry-After": "2"}), connector="acme")
    assert isinstance(error, RetryableError) and error.retry_after == 2.0


def test_retryable_without_retry_after_leaves_the_wait_to_backoff() -> None:
    error = error_for_response(answer(500), connector="acme")
    assert isinstance(error, RetryableError) and error.retry_after is None


def test_a_hooks_wait_overrides_the_header() -> None:
    response = answer(429, headers={"Retry-After": "7"})
    error = error_for_response(response, connector="acme", retry_after=0.25)
    assert isinstance(error, RetryableError) and error.retry_after == 0.25


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        (" 3.5 ", 3.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now=now) == seconds


def test_message_names_connector_method_url_and_status() -> None:
    error = error_for_response(answer(404, text='{"message": "no such route"}'), connector="acme")
    assert str(error).startswith(f"acme: GET {URL} answered 404")
    assert "no such route" in str(error)


def test_auth_error_says_to_renew_credentials() -> None:
    error = error_for_response(answer(401, text="expired"), connector="acme")
    assert "credentials were refused" in str(error) and "expired" in str(error)


def test_fatal_4xx_message_holds_the_body_truncated() -> None:
    error = error_for_response(answer(422, text="x" * 2000), connector="acme")
    assert "x" * 500 in str(error) and "x" * 501 not in str(error)


def test_known_secrets_are_redacted_from_body_and_url() -> None:
    secret = "sk-live-4f9a8b7c"
    response = answer(400, text=f"bad key {secret}", url=f"https://api.acme.example/v2/c?api_key={secret}")
    error = error_for_response(response, connector="acme", secrets=[secret])
    assert error is not None and secret not in str(error) and secret not in error.url


def test_token_looking_fields_are_redacted_without_being_told() -> None:
    body = '{"error": "invalid", "access_token": "abc123def", "echo": "Bearer eyJhbGciOi.payload.sig"}'
    error = error_for_response(answer(400, text=body), connector="acme")
    assert "abc123def" not in str(error) and "eyJhbGciOi" not in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("GET /x?token=abc&limit=5", "GET /x?token=***&limit=5"),
        ('{"password": "hunter2", "user": "ada"}', '{"password": "***", "user": "ada"}'),
        ("refresh_token=r1, next", "refresh_token=***, next"),
        ('{"apiKey":"k-1"}', '{"apiKey":"***"}'),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_replaces_every_known_secret() -> None:
    assert redact("user ada:p4ssw0rd, again p4ssw0rd", ["p4ssw0rd"]) == "user ada:***, again ***"


def test_redact_ignores_empty_and_very_short_secrets() -> None:
    assert redact("a b abc", ["", "abc"]) == "a b abc"
