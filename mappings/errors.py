"""Mapping errors.

* MappingError(ValueError)
  x TemplateError     a field expression or a mapping file is wrong; raised when the mapping is loaded or saved
    + SchemaMismatch  the mapping does not fit the app schema (unknown target field, required field unmapped)
  x RecordError       one record could not be mapped or its result fails the app schema; quarantine it, never
                      stop the run
    + BudgetExceeded  the record's render went past the mapping budget (time, loop steps or size)
"""

from __future__ import annotations

__all__ = ["BudgetExceeded", "MappingError", "RecordError", "SchemaMismatch", "TemplateError"]


class MappingError(ValueError):
    """Base of the mapping errors."""


class TemplateError(MappingError):
    """A mapping that cannot be compiled; the message names the file (or tenant), the field and the line."""

    def __init__(self, message: str, *, origin: str = "", field: str = "", tenant: str = "") -> None:
        super().__init__(message)
        self.origin = origin
        self.field = field
        self.tenant = tenant


class SchemaMismatch(TemplateError):
    """A mapping that compiles but cannot produce records the team's app accepts; nothing was saved."""


class RecordError(MappingError):
    """One record that could not be mapped; carries the field at fault."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class BudgetExceeded(RecordError):
    """A record whose render went past the per-record budget; `reason` is time, iterations or size."""

    def __init__(self, message: str, *, field: str = "", reason: str = "") -> None:
        super().__init__(message, field=field)
        self.reason = reason
