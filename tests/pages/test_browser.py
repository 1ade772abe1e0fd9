"""The tenant pages in a real browser (Debian's Chromium, driven by Playwright): connecting by API key and by OAuth,
a wrong key refused on the form, a mapping edited with a live preview and saved, the next delivery carrying the new
field, and one tenant's session kept out of another's pages and API."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from inlet.service import create_connection, run_here
from tests.pages.conftest import SKIP_NO_CHROMIUM, Stack

pytestmark = [SKIP_NO_CHROMIUM, pytest.mark.needs_chromium]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def token_of(stack: Stack) -> str:
    return stack.sim.connection("")[1]["token"].get_secret_value()


def test_a_wrong_key_is_refused_on_the_form_and_the_right_one_connects(stack: Stack, page: Any) -> None:
    base = stack.session("acme")
    page.goto(base + "/connect")
    page.get_by_role("link", name="Use an API key").click()
    page.get_by_label("Token").fill("pat-wrong-key")
    page.get_by_role("button", name="Check and connect").click()
    alert = page.get_by_role("alert")
    assert "refused these credentials" in alert.inner_text() and "pat-wrong-key" not in page.content()
    assert stack.api("GET", "/tenants/acme/connections").json()["items"] == []
    page.get_by_label("Token").fill(token_of(stack))
    page.get_by_role("button", name="Check and connect").click()
    page.wait_for_url(re.compile(r"/status\?connected=hubspot$"))
    assert "hubspot is connected" in page.get_by_role("status").inner_text()
    assert page.get_by_text("acme-hubspot").is_visible()


def test_a_tenant_connects_by_oauth_through_the_page(stack: Stack, page: Any) -> None:
    base = stack.session("globex")
    page.goto(base + "/connect")
    page.get_by_role("button", name="Sign in with HubSpot CRM").click()  # the simulator consents at once
    page.wait_for_url(re.compile(r"/oauth/callback\?"))
    assert page.get_by_role("heading").inner_text() == "Connected"
    connection = stack.api("GET", "/tenants/globex/connections/globex-hubspot").json()
    assert connection["auth"] == "oauth:active" and connection["parameters"]["base_url"] == stack.sim_url
    page.goto(base + "/status")
    assert page.get_by_text("signed in (OAuth)").is_visible()


def full_import(stack: Stack, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Any:
    """A full import through the service, in this process (a thread: Playwright keeps this one's event loop)."""
    stack.apply_env(monkeypatch)
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run_here, stack.inst, "full-import", "acme", "acme-hubspot").result(timeout=600)


@pytest.fixture(scope="module")
def imported(stack: Stack, prefect_api: str) -> Stack:
    """acme connected (by the first test, or here) and fully imported once, so the pages have records to show."""
    if stack.api("GET", "/tenants/acme/connections/acme-hubspot").status_code == 404:
        parameters, credentials = stack.sim.connection(stack.sim_url)
        create_connection(
            stack.inst,
            tenant_id="acme",
            connection_id="acme-hubspot",
            app="hubspot",
            parameters=parameters,
            credentials={k: SecretStr(v.get_secret_value()) for k, v in credentials.items()},
        )
    with pytest.MonkeyPatch.context() as patch:
        assert full_import(stack, patch, prefect_api).created == 12
    return stack


def test_an_edited_mapping_is_previewed_saved_and_delivered(
    imported: Stack, page: Any, monkeypatch: pytest.MonkeyPatch, prefect_api: str
) -> None:
    assert all("jobTitle" not in r["record"] for r in imported.app_records("acme"))
    page.goto(imported.session("acme") + "/mapping")
    source = page.get_by_label("Source of jobTitle")
    assert source.input_value() == ""  # not mapped by default
    source.select_option("raw:properties.jobtitle")
    shown = page.locator('#preview-records dd[data-field="jobTitle"]')
    shown.first.wait_for()
    titles = {p.title for p in imported.sim.people.all}
    assert shown.count() == 3 and {t.strip() for t in shown.all_inner_texts()} <= titles
    assert "0 of 12 stored records would not fit" in page.locator("#preview-summary").inner_text()
    page.get_by_role("button", name="Save mapping").click()
    assert "Saved: jobTitle" in page.get_by_role("status").inner_text()

    again = full_import(imported, monkeypatch, prefect_api)
    assert again.updated == 12
    by_id = {imported.sim.external_id(p): p for p in imported.sim.people.all}
    records = imported.app_records("acme")
    assert len(records) == 12 and all(r["record"]["jobTitle"] == by_id[r["external_id"]].title for r in records)


def test_a_session_of_one_tenant_cannot_read_another_tenants_pages_or_api(imported: Stack, page: Any) -> None:
    acme = imported.session("acme")
    token = acme.rsplit("/", 1)[1]
    page.goto(acme + "/status")
    assert page.get_by_text("acme-hubspot").is_visible() and page.get_by_text("globex-hubspot").count() == 0
    other = page.goto(acme + "/mapping?connection=globex-hubspot")
    assert other is not None and other.status == 404
    headers = {"Authorization": f"Bearer {token}"}
    api = page.request.get(imported.url + "/api/tenants/globex/connections", headers=headers)
    assert api.status == 403 and api.json()["type"] == "urn:inlet:problem:forbidden"
    own = page.request.get(imported.url + "/api/tenants/acme/connections", headers=headers)
    assert own.status == 200 and [c["id"] for c in own.json()["items"]] == ["acme-hubspot"]
    forged = page.goto(acme.replace(token, token[:-4] + "AAAA") + "/status")
    assert forged is not None and forged.status == 403


def test_the_pages_are_labelled_keyboard_usable_and_fit_a_narrow_iframe(imported: Stack, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    base = imported.session("acme")
    page.goto(base + "/mapping")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
              .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # into the form: the first field's source
    assert page.evaluate("document.activeElement.tagName") == "SELECT"
    page.set_content(f'<iframe src="{base}/status" width="320" height="700" title="inlet"></iframe>')
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Status").wait_for()
    overflow = page.frames[1].evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    context.close()


def test_screenshots_of_the_three_pages(imported: Stack, browser: Any, tmp_path: Path) -> None:
    """PNGs of the pages at an embed's size; copied to docs/ by `UPDATE_SCREENSHOTS=1`."""
    import os

    context = browser.new_context(viewport={"width": 1100, "height": 820}, device_scale_factor=1)
    page = context.new_page()
    base = imported.session("acme")
    shots = []
    for name, path in (("connect", "/connect"), ("status", "/status"), ("mapping", "/mapping")):
        page.goto(base + path)
        if name == "mapping":
            page.get_by_label("Source of title").select_option("expr")
            page.get_by_label("Expression for title").fill("{{ title | upper }}")
            page.locator('#preview-records dd[data-field="title"]').first.wait_for()
            page.evaluate("window.scrollTo(0, 0)")
        shots.append(page.screenshot(path=str(tmp_path / f"page-{name}.png")))
    context.close()
    assert all(shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000 for shot in shots)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for name in ("connect", "status", "mapping"):
            shutil.copy(tmp_path / f"page-{name}.png", DOCS / f"page-{name}.png")


def test_no_request_leaves_the_machine(imported: Stack, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.goto(imported.session("acme") + "/mapping")
    page.get_by_label("Source of title").select_option("udm:email")
    page.locator("#preview-records li").first.wait_for()
    context.close()
    assert seen and all(url.startswith(imported.url) for url in seen)
