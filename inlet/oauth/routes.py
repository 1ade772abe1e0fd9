"""The receiver's OAuth routes: a connect link that serves the consent URL, and the callback.

    GET /oauth/start?link=...                     302 to the app's consent page, with a fresh single-use state
    GET /oauth/callback?code=...&state=...        200: the tokens are stored, a plain page says so
    GET /oauth/callback?error=access_denied&...   400: nothing stored (the state is spent all the same)

A connect link (`inlet connections connect` prints one) is sealed with the credentials key and names the
tenant, app and connection; it stays valid for `oauth_link_ttl_seconds` and can be opened again, while each
opening mints its own state. Nobody can make a link for another tenant without the key.

A forged, altered, expired or reused `state` gets 400 and nothing is stored; a code the app refuses
gets 502. The page never shows a token, a code or the state.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable

import httpx
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.errors import ConnectorError
from inlet.errors import InletError
from inlet.oauth.clients import token_client
from inlet.oauth.connect import StateRefused, finish_connect, open_link, spend_state
from inlet.settings import Settings, get_settings
from inlet.store import Vault

__all__ = ["oauth_routes"]

logger = logging.getLogger(__name__)


def oauth_routes(
    engine: Engine,
    vault: Vault,
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> list[BaseRoute]:
    """The callback route; `settings` default to the process's (read at request time)."""

    async def callback(request: Request) -> Response:
        params = request.query_params
        current = settings or get_settings()
        state = params.get("state", "")
        try:
            if params.get("error"):
                await run_in_threadpool(spend_state, engine, vault, current, state, clock())
                return _page(400, "Not connected", f"The app answered: {params['error']}. Nothing was stored.")
            if not state or not params.get("code"):
                return _page(400, "Not connected", "This link lacks its code or state. Start the connection again.")
            async with token_client(current, transport) as http:
                done = await finish_connect(
                    engine, vault, current, state=state, code=params["code"], http=http, now=clock()
                )
        except StateRefused as exc:
            logger.warning("OAuth callback refused: %s", exc)
            return _page(400, "Not connected", f"{exc}. Nothing was stored.")
        except ConnectorError as exc:
            logger.warning("OAuth callback: the token exchange failed: %s", exc)
            return _page(502, "Not connected", "The app refused to exchange the code. Start the connection again.")
        except InletError as exc:
            return _page(400, "Not connected", str(exc))
        logger.info("OAuth: tenant %s connected %s (%s)", done.tenant_id, done.connection_id, done.app)
        return _page(200, "Connected", f"{done.app} is connected for {done.tenant_id}. You can close this page.")

    async def start(request: Request) -> Response:
        current = settings or get_settings()
        try:
            url = await run_in_threadpool(
                open_link, engine, vault, current, request.query_params.get("link", ""), clock()
            )
        except InletError as exc:
            return _page(400, "Cannot connect", str(exc))
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})

    return [Route("/oauth/start", start, methods=["GET"]), Route("/oauth/callback", callback, methods=["GET"])]


def _page(status: int, title: str, message: str) -> Response:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(
        body, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )
