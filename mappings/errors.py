"""Mapping errors.

* MappingError(ValueError)
  x TemplateError   a field expression or a mapping file is wrong; raised when the mapping is loaded
  x RecordError     one record could not be mapped or validated; skip (quarantine) it, never stop the run
"""

from __future__ import annotations

__all__ = ["MappingError", "RecordError", "TemplateError"]


class MappingError(ValueError):
    """Base of the mapping errors."""


class TemplateError(MappingError):
    """A mapping that cannot be compiled; the message names the file, the field and the line."""

    def __init__(self, message: str, *, origin: str = "", field: str = "") -> None:
        super().__init__(message)
        self.origin = origin
        self.field = field


class RecordError(MappingError):
    """One record that could not be mapped; carries the field at fault."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field
