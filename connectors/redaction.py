"""Secrets removed from text meant for people, in every form they travel in: messages, logs, artifacts.

A credential leaves inlet as itself, in an HTTP Basic header (base64 of `user:password`), percent-encoded in a
query string or a form, JSON-escaped in a body; and an app may echo any of these back in an error body. So a
secret is looked for as:

    literal          s3cr/t+é
    percent-encoded  s3cr%2Ft%2B%C3%A9, s3cr/t%2B%C3%A9, s3cr%2ft%2b%c3%a9, s3cr%2Ft+%C3%A9 (form), twice
    JSON-escaped     s3cr/t+\\u00e9, s3cr\\/t+\\u00e9
    base64           of the secret and of each `a:b` pair of a connection's secrets (std and url alphabets,
                     padded or not), and the part of its base64 that is the same at any offset inside a
                     longer base64 text (three alignments)

`redact(text, secrets)` is the one function every message path uses. `Redactor` is a connection's view of it
(`Connector.redact`); the live redactors also clean every log record this process makes, whichever logger
made it (`install_log_redaction`, a LogRecord factory), so a traceback that shows a secret shows `***`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import weakref
from collections.abc import Iterable
from functools import lru_cache
from itertools import permutations
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["Redactor", "install_log_redaction", "redact", "redact_start"]

MASK = "***"
_MIN_SECRET = 4  # shorter values are not secrets worth the false positives
_MIN_FRAGMENT = 8  # the shortest aligned base64 fragment that is still distinctive
_PAIRED = 6  # pairs are made of the first secrets only: the credentials; OAuth tokens appended later never pair
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    # base64 after "Basic": it has a digit, + / or =, or a lowercase letter followed by a capital; a word has none
    re.compile(r"((?i:basic)\s+)(?=[A-Za-z0-9+/=]*(?:[0-9+/=]|[a-z][A-Z]))[A-Za-z0-9+/=]{8,}"),
    re.compile(
        r"(?i)(\"?(?:access_token|refresh_token|token|password|secret|api_key|apikey|client_secret)\"?\s*[:=]\s*\"?)"
        r"[^\"&\s,}]+"
    ),
]
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Text with every form of each secret, and token-looking fields, replaced by ***."""
    kept = tuple(s for s in secrets if s and len(s) >= _MIN_SECRET)
    for form in _forms_of(kept):
        if form in text:
            text = text.replace(form, MASK)
    if "%" in text and (escaped := _percent_pattern(kept)) is not None:
        text = escaped.sub(MASK, text)  # percent-encoded forms with hex digits in any case (%2f, %2F)
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1" + MASK, text)
    return text


def redact_start(text: str, secrets: Iterable[str], limit: int) -> str:
    """The first `limit` characters of `text`, redacted; a secret that crosses the cut goes whole, since the
    text is redacted before it is cut (cutting first would keep the secret's head)."""
    kept = tuple(s for s in secrets if s and len(s) >= _MIN_SECRET)
    longest = max((len(form) for form in _forms_of(kept)), default=0)
    return redact(text[: limit + longest + 512], kept)[:limit]


class Redactor:
    """A connection's secrets, shared by reference: a token its OAuth auth appends later is redacted too.

    While it lives it also cleans this process's log records (see `install_log_redaction`).
    """

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        install_log_redaction()
        with _LIVE_LOCK:
            _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"

    def __call__(self, text: str) -> str:
        return redact(text, self.secrets)


@lru_cache(maxsize=512)
def _forms_of(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Each secret's forms, and the base64 of each `a:b` pair of the first ones (an HTTP Basic header), longest
    first. A connection's list starts with its credentials; a long OAuth run appends a token per refresh."""
    forms: set[str] = set()
    for secret in secrets:
        forms.update(_single_forms(secret))
    for first, second in permutations(secrets[:_PAIRED], 2):
        forms.update(_base64_forms(f"{first}:{second}".encode(), fragments=False))
    return tuple(sorted(forms, key=len, reverse=True))


@lru_cache(maxsize=512)
def _percent_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = sorted({form for secret in secrets for form in _single_forms(secret) if "%" in form}, key=len)
    if not forms:
        return None
    return re.compile("|".join(_hex_any_case(form) for form in reversed(forms)))


def _hex_any_case(form: str) -> str:
    parts = re.split(r"(%[0-9A-Fa-f]{2})", form)
    return "".join(
        f"%[{p[1].upper()}{p[1].lower()}][{p[2].upper()}{p[2].lower()}]"
        if _PERCENT.fullmatch(p.upper())
        else re.escape(p)
        for p in parts
    )


@lru_cache(maxsize=4096)
def _single_forms(secret: str) -> frozenset[str]:
    forms = _text_forms(secret) | _base64_forms(secret.encode())
    return frozenset(form for form in forms if len(form) >= _MIN_SECRET)


def _text_forms(secret: str) -> set[str]:
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret), quote(quote(secret, safe=""), safe="")}
    lower = {_PERCENT.sub(lambda m: m.group().lower(), form) for form in encoded}
    escaped = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    slashed = {form.replace("/", "\\/") for form in escaped}
    return {secret, *encoded, *lower, *escaped, *slashed}


def _base64_forms(raw: bytes, *, fragments: bool = True) -> set[str]:
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms.update({whole, whole.rstrip("=")})
        if fragments:
            forms.update(_aligned(encode, raw))
    return forms


def _aligned(encode: Any, raw: bytes) -> set[str]:
    """The base64 characters that depend on the secret alone, at each of the three byte offsets it can have."""
    pieces = set()
    for offset in range(3):
        text = encode(b"\0" * offset + raw).decode().rstrip("=")
        start = 4 if offset else 0  # the first quad mixes in the bytes before the secret
        usable = (offset + len(raw)) // 3 * 4  # whole quads; the last partial one mixes in the bytes after it
        piece = text[start:usable]
        if len(piece) >= _MIN_FRAGMENT:
            pieces.add(piece)
    return pieces


# -- log records ------------------------------------------------------------------------------------

_LIVE: weakref.WeakSet[Redactor] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()
_INSTALLED = False


def install_log_redaction() -> None:
    """Wrap this process's LogRecord factory once: every record any logger makes (inlet, connectors, flows,
    Prefect's run loggers, httpx) has the live redactors' secrets removed from its message and traceback
    before a handler (the console, Prefect's API log handler) sees it."""
    global _INSTALLED
    with _LIVE_LOCK:
        if _INSTALLED:
            return
        _INSTALLED = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    logging.setLogRecordFactory(factory)


def _clean(text: str) -> str:
    with _LIVE_LOCK:
        groups = [list(redactor.secrets) for redactor in _LIVE]
    for secrets in groups:
        text = redact(text, secrets)
    return redact(text) if not groups else text


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a record whose args do not fit its message: the handler reports that itself
        return
    clean = _clean(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        trace = logging.Formatter().formatException(record.exc_info)
        clean = _clean(trace)
        if clean != trace:
            record.exc_info, record.exc_text = None, clean
