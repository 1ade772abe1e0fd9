"""One inlet server (receiver, API, pages) in this process over real HTTP on 127.0.0.1, with a HubSpot simulator
(API and OAuth), the demo app as the team's app (its schema per tenant), tenants `acme` and `globex`, an admin
key, and one headless Chromium for the module (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.registry import make_simulator
from connectors.simulation import SimulatorBase
from connectors.simulation.oauth import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from inlet.api import create_server
from inlet.demo import USERS_SCHEMA, create_demo_app
from inlet.local import free_port
from inlet.oauth import register_client
from inlet.service import Installation, create_api_key, create_tenant, initialise, open_installation
from inlet.settings import Settings, get_settings
from tests.support.serving import serve_in_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_NO_CHROMIUM = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (Debian: apt-get install chromium)"
)
# The team's app asks for one field the default mapping does not fill: the tenant maps it on the page.
ACME_SCHEMA = {**USERS_SCHEMA, "properties": {**USERS_SCHEMA["properties"], "jobTitle": {"type": ["string", "null"]}}}


@dataclass
class Stack:
    inst: Installation
    url: str
    sim: SimulatorBase
    sim_url: str
    app_url: str
    admin: str
    env: dict[str, str]

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.request(method, f"{self.url}/api{path}", headers=headers, timeout=60, **kwargs)

    def session(self, tenant: str, connectors: tuple[str, ...] = ("hubspot",)) -> str:
        """A connect session's page URL base (`.../pages/<token>`), with the simulator's hosts set by the backend."""
        hosts = {"base_url": self.sim_url, "login_url": self.sim_url}
        body = {"connectors": list(connectors), "parameters": {"hubspot": hosts}}
        created = self.api("POST", f"/tenants/{tenant}/connect-sessions", json=body)
        assert created.status_code == 201, created.text
        return str(created.json()["url"]).removesuffix("/connect")

    def app_records(self, tenant: str) -> list[dict[str, Any]]:
        return list(httpx.get(self.app_url + "/records", params={"tenant": tenant}, timeout=30).json())

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """This home's settings as INLET_* variables (flows read them) for the running test."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("pages")
    port = free_port()
    app_port = free_port()
    env = {
        "INLET_HOME": str(folder / "home"),
        "INLET_RECEIVER_PORT": str(port),
        "INLET_PREFECT_PORT": str(free_port()),
        "INLET_DESTINATION__URL": f"http://127.0.0.1:{app_port}",
        "INLET_DESTINATION__MAX_ATTEMPTS": "2",
        "INLET_APP_SCHEMA__SOURCE": "app",
        "INLET_EGRESS__ALLOW_HOSTS": '["127.0.0.1"]',  # the simulator and the demo app listen there
    }
    with pytest.MonkeyPatch.context() as patch, ExitStack() as started:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings()
        initialise(settings)
        inst = open_installation(settings)
        secret = settings.destination_secret()
        assert secret is not None
        demo = create_demo_app(folder / "app.db", [secret.get_secret_value()])
        app_url = started.enter_context(serve_in_thread(demo, port=app_port))
        httpx.post(app_url + "/_demo/schemas", json={"tenant": "acme", "schema": ACME_SCHEMA}).raise_for_status()
        sim = make_simulator("hubspot", 12)
        sim_url = started.enter_context(serve_in_thread(sim.app))
        env["INLET_OAUTH_ENDPOINTS__HUBSPOT"] = sim_url  # the operator points HubSpot's OAuth at the simulator
        patch.setenv("INLET_OAUTH_ENDPOINTS__HUBSPOT", sim_url)
        inst.settings.oauth_endpoints["hubspot"] = sim_url
        register_client(inst.engine, inst.vault, "hubspot", SIM_CLIENT_ID, SecretStr(SIM_CLIENT_SECRET))
        url = started.enter_context(serve_in_thread(create_server(inst, lambda t, c: None), port=port))
        for tenant in ("acme", "globex"):
            create_tenant(inst, tenant)
        yield Stack(inst, url, sim, sim_url, app_url, create_api_key(inst, "backend", ["admin"])[1], env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 900})
    yield context.new_page()
    context.close()
