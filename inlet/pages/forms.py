"""What the pages' forms carry: reading a url-encoded body (size-capped), the CSRF token of a session, and the
mapping editor's choices turned into expressions and back.

A mapping choice is `udm:<field>` (a UDM field), `raw:<dotted.path>` (a field of the app's record), `expr` (the
expression typed beside it) or empty (not mapped).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl

from inlet.errors import ConfigError

__all__ = ["MAX_FORM_BYTES", "changed_fields", "choice_of", "csrf_token", "csrf_valid", "expression_of", "parse_form"]

MAX_FORM_BYTES = 64_000
_UDM = re.compile(r"^\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}$")
_RAW = re.compile(r"^\{\{\s*raw\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}$")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_form(body: bytes) -> dict[str, str]:
    """A url-encoded form; the last value of a repeated name wins."""
    if len(body) > MAX_FORM_BYTES:
        raise ConfigError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=500))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError("the form could not be read") from None


def csrf_token(session_token: str) -> str:
    """The token every form of this session posts back: only a holder of the session token can compute it."""
    return hmac.new(session_token.encode(), b"inlet-pages-csrf", hashlib.sha256).hexdigest()


def csrf_valid(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_token), presented)


def choice_of(expression: str | None, udm_fields: set[str]) -> tuple[str, str]:
    """(choice, expression text) for the editor, from a mapping expression."""
    if not expression:
        return "", ""
    if (udm := _UDM.match(expression)) and udm[1] in udm_fields:
        return f"udm:{udm[1]}", expression
    if raw := _RAW.match(expression):
        return f"raw:{raw[1]}", expression
    return "expr", expression


def expression_of(choice: str, typed: str, udm_fields: set[str]) -> str | None:
    """The mapping expression of an editor choice; None for "not mapped"; ConfigError for a forged choice."""
    kind, _, value = choice.partition(":")
    if choice == "":
        return None
    if choice == "expr":
        return typed
    if kind == "udm" and value in udm_fields:
        return "{{ " + value + " }}"
    if kind == "raw" and _PATH.match(value):
        return "{{ raw." + value + " }}"
    raise ConfigError(f"{choice!r} is not a field to map from")


def changed_fields(
    form: Mapping[str, str], current: Mapping[str, str], fields: list[str], udm_fields: set[str]
) -> dict[str, str | None]:
    """The fields whose chosen expression differs from the current mapping (those go in the tenant's layer)."""
    changes: dict[str, str | None] = {}
    for name in fields:
        if f"choice.{name}" not in form:
            continue
        chosen = expression_of(form[f"choice.{name}"], form.get(f"expr.{name}", ""), udm_fields)
        if chosen != current.get(name):
            changes[name] = chosen
    return changes
