"""The runtime's error tree.

* InletError
  x ConfigError     settings, keys or files are missing or wrong; the message says what to run
  x NotFound        a tenant, connection or delivery that does not exist (the CLI exits non-zero)
  x DeliveryError   the team's app did not take a batch (kept in the outbox, never dropped)
  x SignatureError  a signed request failed verification (also a ValueError); the message names the check
  x ProcessError    a process inlet starts (Prefect server, worker, app) exited early or never became ready
  x Conflict        what is being created already exists
  x Refused         the caller may not do this (a key without the scope, a session of another tenant)
  x CredentialsRefused  the app refused the credentials, or could not be reached to check them; nothing saved
  x RateLimited     too many attempts; carries .retry_after (seconds)
  x Unavailable     a service inlet needs (the Prefect server, a deployment) does not answer or lacks something
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Conflict",
    "CredentialsRefused",
    "DeliveryError",
    "InletError",
    "NotFound",
    "ProcessError",
    "RateLimited",
    "Refused",
    "SignatureError",
    "Unavailable",
]


class InletError(Exception):
    """Base of the runtime errors."""


class ConfigError(InletError):
    """Settings, keys or files that are missing or wrong."""


class NotFound(InletError, LookupError):
    """A tenant, connection or other object that does not exist."""


class DeliveryError(InletError):
    """The team's app did not accept a batch; its events stay in the outbox."""


class QuarantineShareExceeded(InletError):
    """A run quarantined more of its records than INLET_MAX_QUARANTINE_SHARE allows: most likely a mapping error."""


class SignatureError(InletError, ValueError):
    """A delivery failed verification; the message says which check failed, never a secret."""


class ProcessError(InletError):
    """A child process did not start (exited early or never became ready)."""


class Conflict(ConfigError):
    """What is being created already exists (a tenant, a connection)."""


class Refused(InletError, PermissionError):
    """The caller may not do this: an API key without the scope, a connect session of another tenant."""


class CredentialsRefused(InletError):
    """The app refused the credentials (or could not be reached to check them); nothing was saved."""


class RateLimited(InletError):
    """Too many attempts in the window; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(InletError):
    """A service inlet needs (the Prefect server, a deployment on it) does not answer or lacks something."""
