"""The connector error tree, sorted by what the operator should do.

* ConnectorError
  x RetryableError      429, 5xx, timeouts, connection errors; carries .retry_after
  x FatalError          stop the run; a person must act
    + AuthError         401/403: credentials missing, expired or revoked
      + NeedsReauth     the OAuth grant was revoked (invalid_grant); the tenant must connect again
    + RequestRejected   another 4xx: the request is wrong for this API
      + WriteRejected   a write the app refused as invalid (its message in .app_message); retrying will not help
    + WriteConflict     a write whose etag is stale, or a create of a record that exists (.existing_id)
    + MalformedPage     the response is not the JSON shape the connector declares
    + PaginationLoop    the API returned the same next page twice
    + PaginationLimit   more pages than the connector's max_pages guard
    + SinceExpired      the stored incremental token is refused; pull_changes falls back to a full resync
    + InvalidParameter  a connection parameter breaks the rule its connector declares for it
    + OriginRefused     a request (a next link, a delta link) to an origin the connection's credentials do not go to
    + EgressRefused     a request to a loopback, private, link-local or metadata address the installation did not allow
    + SubscriptionGone  the app no longer has the webhook subscription (expired, removed); create a new one
  x WebhookRejected     a webhook with a missing, forged or stale signature (answered 401, nothing kept)
  x SpecError           a connector.yaml that does not validate (also a ValueError)

`error_for_response` is the one place where an HTTP status becomes an exception.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable

import httpx

from connectors.redaction import redact, redact_start

__all__ = [
    "AuthError",
    "ConnectorError",
    "EgressRefused",
    "FatalError",
    "InvalidParameter",
    "MalformedPage",
    "NeedsReauth",
    "OriginRefused",
    "PaginationLimit",
    "PaginationLoop",
    "RequestRejected",
    "RetryableError",
    "SinceExpired",
    "SubscriptionGone",
    "WebhookRejected",
    "WriteConflict",
    "WriteRejected",
    "SpecError",
    "error_for_response",
    "parse_retry_after",
    "redact",
]

_MAX_BODY_IN_MESSAGE = 500


class ConnectorError(Exception):
    """Base of every error raised while talking to an external app."""

    def __init__(self, message: str, *, connector: str = "", url: str = "") -> None:
        super().__init__(message)
        self.connector = connector
        self.url = url


class RetryableError(ConnectorError):
    """A transient failure: try again after `retry_after` seconds (None: use backoff)."""

    def __init__(
        self,
        message: str,
        *,
        connector: str = "",
        url: str = "",
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, connector=connector, url=url)
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when the app answered (None: a timeout or a lost connection)


class FatalError(ConnectorError):
    """Retrying will not help; the run stops and a person must act."""


class AuthError(FatalError):
    """The app refused the credentials (401/403)."""


class NeedsReauth(AuthError):
    """The connection's OAuth grant is gone (revoked, expired): no refresh will help until the tenant reconnects."""


class RequestRejected(FatalError):
    """The app rejected the request with a 4xx other than 401/403/429."""


class WriteRejected(RequestRejected):
    """The app refused a write as invalid (a validation error); `app_message` is what the app said."""

    def __init__(
        self, message: str, *, connector: str = "", url: str = "", app_message: str = "", status: int | None = None
    ) -> None:
        super().__init__(message, connector=connector, url=url)
        self.app_message = app_message
        self.status = status  # 404/410 on an update: the record is gone


class WriteConflict(FatalError):
    """The record changed since it was read (a stale etag: 412, Google's FAILED_PRECONDITION), or a create
    collided with an existing record (HubSpot's 409 on a taken email: its id in `existing_id`). The pusher
    resolves it by its conflict policy; the same request again will fail the same way."""

    def __init__(self, message: str, *, connector: str = "", url: str = "", existing_id: str | None = None) -> None:
        super().__init__(message, connector=connector, url=url)
        self.existing_id = existing_id


class MalformedPage(FatalError):
    """A response that is not the JSON shape the connector declares."""


class PaginationLoop(FatalError):
    """The API handed out a next page that was already read."""


class PaginationLimit(FatalError):
    """The listing went past the connector's max_pages guard."""


class SinceExpired(FatalError):
    """The app no longer accepts the stored incremental token (expired sync token or delta link)."""


class InvalidParameter(FatalError):
    """A connection parameter that breaks its connector's declared rule (pattern, values or URL hosts)."""


class OriginRefused(FatalError):
    """A request to an origin the connection's credentials do not belong to, which the connector refuses."""


class EgressRefused(FatalError):
    """A request whose host is (or resolves to) an internal address the installation did not allow-list."""


class SubscriptionGone(FatalError):
    """The app answered that a webhook subscription no longer exists (it expired or was removed)."""


class WebhookRejected(ConnectorError):
    """A webhook whose signature is missing, wrong or too old."""


class SpecError(ValueError):
    """A connector.yaml that does not validate; the message names the file and the bad key."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_response(
    response: httpx.Response,
    *,
    connector: str,
    secrets: Iterable[str] = (),
    retry_after: float | None = None,
) -> ConnectorError | None:
    """The exception a response stands for, or None for a 2xx/3xx.

    `retry_after` overrides the Retry-After header, for apps that signal the wait elsewhere
    (HubSpot puts a policy name in the 429 body).
    """
    status = response.status_code
    if status < 400:
        return None
    url = redact(str(response.request.url), secrets)
    body = redact_start(response.text, secrets, _MAX_BODY_IN_MESSAGE)
    where = f"{connector}: {response.request.method} {url}"
    if status == 429 or status >= 500:
        wait = retry_after if retry_after is not None else parse_retry_after(response.headers.get("Retry-After"))
        return RetryableError(
            f"{where} answered {status}; will retry{f' after {wait:.1f}s' if wait is not None else ''}. Body: {body}",
            connector=connector,
            url=url,
            retry_after=wait,
            status=status,
        )
    if status in (401, 403):
        return AuthError(
            f"{where} answered {status}: the credentials were refused. Check or renew the connection's "
            "credentials (`inlet connections update --tenant TENANT --connection CONNECTION "
            "--credential NAME=VALUE`). "
            f"Body: {body}",
            connector=connector,
            url=url,
        )
    return RequestRejected(
        f"{where} answered {status}; the request is wrong for this API, retrying will not help. Body: {body}",
        connector=connector,
        url=url,
    )
