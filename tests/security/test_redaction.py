"""Redaction knows every form a secret travels in, and cleans log records from any logger."""

from __future__ import annotations

import base64
import gc
import json
import logging
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import httpx
import pytest

from connectors.errors import error_for_response
from connectors.redaction import Redactor, redact, redact_start

USER, PASSWORD = "cnry-user-7Q2v", 'cnry/Pw+7=x:"é&k y'
TOKEN = "ya29.a0AfH6SMBx-token_with.dots~and/slash"


def _b64(text: str, encode: Callable[[bytes], bytes] = base64.b64encode) -> str:
    return encode(text.encode()).decode()


FORMS = {
    "literal": PASSWORD,
    "url": quote(PASSWORD, safe=""),
    "url-path": quote(PASSWORD),
    "url-lower": quote(PASSWORD, safe="").replace("%2F", "%2f").replace("%C3%A9", "%c3%a9"),
    "form": quote_plus(PASSWORD),
    "url-twice": quote(quote(PASSWORD, safe=""), safe=""),
    "json": json.dumps(PASSWORD)[1:-1],
    "json-utf8": json.dumps(PASSWORD, ensure_ascii=False)[1:-1],
    "json-slash": json.dumps(PASSWORD)[1:-1].replace("/", "\\/"),
    "base64": _b64(PASSWORD),
    "base64-unpadded": _b64(PASSWORD).rstrip("="),
    "base64url": _b64(PASSWORD, base64.urlsafe_b64encode),
    "basic": _b64(f"{USER}:{PASSWORD}"),
    "basic-url": _b64(f"{USER}:{PASSWORD}", base64.urlsafe_b64encode).rstrip("="),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_of_a_secret_is_masked(form: str) -> None:
    text = f"the app said: {{'echo': '{FORMS[form]}', 'ok': false}}"
    assert FORMS[form] not in redact(text, [USER, PASSWORD]) and "***" in redact(text, [USER, PASSWORD])


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc"])
def test_a_secret_inside_a_longer_base64_text_is_masked_at_any_offset(prefix: str) -> None:
    blob = _b64(json.dumps({"p": prefix, "token": TOKEN, "n": 1}))  # a JWT, a cookie, an OAuth state
    clean = redact(f"state={blob}", [TOKEN])
    assert clean != f"state={blob}" and not any(piece in clean for piece in _pieces(TOKEN))


def _pieces(secret: str) -> list[str]:
    """8-character windows of the secret's base64 at each alignment: none may survive."""
    found = []
    for offset in range(3):
        encoded = _b64("\0" * offset + secret)[4:-4]
        found += [encoded[i : i + 8] for i in range(0, len(encoded) - 8, 4)]
    return found


def test_a_secret_crossing_the_cut_goes_whole() -> None:
    text = "x" * 95 + PASSWORD + " and more"
    cut = redact_start(text, [PASSWORD], 100)
    assert cut.startswith("x" * 95 + "***") and len(cut) == 100 and PASSWORD[:3] not in cut


def test_an_auth_error_echoing_the_basic_header_names_no_secret() -> None:
    request = httpx.Request("GET", "https://api.example/records?token=" + quote(PASSWORD, safe=""))
    body = {"error": "bad credentials", "got": "Basic " + FORMS["basic"], "password": PASSWORD}
    response = httpx.Response(401, json=body, request=request)
    error = error_for_response(response, connector="kinto", secrets=[USER, PASSWORD])
    assert error is not None and "answered 401" in str(error)
    assert not [name for name, form in FORMS.items() if form in str(error) + error.url]


def test_a_redactor_knows_secrets_added_after_it_was_made() -> None:
    secrets = [PASSWORD]
    redactor = Redactor(secrets)
    secrets.append(TOKEN)  # an OAuth access token the connection was given later
    assert redactor(f"refresh gave {TOKEN}") == "refresh gave ***"


def test_log_records_of_any_logger_are_cleaned_while_a_redactor_lives(caplog: pytest.LogCaptureFixture) -> None:
    redactor = Redactor([USER, PASSWORD])
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("sent %s", "Authorization: Basic " + FORMS["basic"])
        try:
            raise RuntimeError(f"could not reach https://h/?p={FORMS['url']}")
        except RuntimeError:
            logging.getLogger("prefect.flow_runs").exception("the run failed")
    assert "***" in caplog.text and not [name for name, form in FORMS.items() if form in caplog.text]
    assert "RuntimeError" in caplog.text  # the traceback is kept, only the secret goes
    del redactor
    gc.collect()
