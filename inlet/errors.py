"""The runtime's error tree.

* InletError
  x ConfigError     settings, keys or files are missing or wrong; the message says what to run
  x NotFound        a tenant, connection or delivery that does not exist (the CLI exits non-zero)
  x DeliveryError   the team's app did not take a batch (kept in the outbox, never dropped)
  x SignatureError  a signed request failed verification (also a ValueError); the message names the check
  x ProcessError    a process inlet starts (Prefect server, worker, app) exited early or never became ready
"""

from __future__ import annotations

__all__ = ["ConfigError", "DeliveryError", "InletError", "NotFound", "ProcessError", "SignatureError"]


class InletError(Exception):
    """Base of the runtime errors."""


class ConfigError(InletError):
    """Settings, keys or files that are missing or wrong."""


class NotFound(InletError, LookupError):
    """A tenant, connection or other object that does not exist."""


class DeliveryError(InletError):
    """The team's app did not accept a batch; its events stay in the outbox."""


class SignatureError(InletError, ValueError):
    """A delivery failed verification; the message says which check failed, never a secret."""


class ProcessError(InletError):
    """A child process did not start (exited early or never became ready)."""
