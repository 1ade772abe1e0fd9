"""The pages' guards over plain HTTP: CSRF on every form, sessions that expire, API keys refused as page tokens,
safe response headers, page changes in the audit log, and the credential form rate-limited per session."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlmodel import Session, col, select

from inlet.service import audit_log
from inlet.store import ConnectSession, utcnow
from tests.pages.conftest import Stack


def test_a_form_without_the_sessions_csrf_token_is_refused(stack: Stack) -> None:
    base = stack.session("globex")
    form = {"secret.token": "x"}
    refused = httpx.post(base + "/connect/hubspot", data=form)
    forged = httpx.post(base + "/connect/hubspot", data={**form, "csrf": "0" * 64})
    assert refused.status_code == forged.status_code == 403 and "not sent from this page" in refused.text
    assert stack.api("GET", "/tenants/globex/connections/globex-hubspot-x").status_code == 404


def test_pages_are_not_cached_send_no_referrer_and_load_nothing_from_elsewhere(stack: Stack) -> None:
    answer = httpx.get(stack.session("globex") + "/connect")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert "http" not in answer.text.split("<body>")[0].replace(stack.url, "")  # no outside stylesheet or script


def test_an_expired_session_and_an_api_key_do_not_open_pages(stack: Stack) -> None:
    base = stack.session("globex")
    token = base.rsplit("/", 1)[1]
    with Session(stack.inst.engine) as session:
        for row in session.exec(select(ConnectSession).where(col(ConnectSession.tenant_id) == "globex")):
            row.expires_at = utcnow() - timedelta(seconds=1)
            session.add(row)
        session.commit()
    expired = httpx.get(base + "/status")
    assert expired.status_code == 403 and "expired" in expired.text and token not in expired.text
    with_key = httpx.get(base.replace(token, stack.admin) + "/status")
    assert with_key.status_code == 403 and "connect session" in with_key.text


def test_a_page_change_is_audited_without_the_session_token(stack: Stack) -> None:
    base = stack.session("globex")
    page = httpx.get(base + "/connect/hubspot")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    httpx.post(base + "/connect/hubspot", data={"csrf": csrf, "secret.token": "wrong-one"})
    entry = audit_log(stack.inst, "globex", limit=1).items[0]
    assert (entry.action, entry.status) == ("POST /pages/{token}/connect/{app}", 422)
    assert entry.actor.startswith("session:") and base.rsplit("/", 1)[1] not in str(entry)
