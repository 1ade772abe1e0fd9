"""The tenant pages (`/pages/{session token}/...`), server-rendered with Jinja2, with their own CSS and JS: no CDN,
no outside request. They open only with a live connect session and act only for its tenant and connectors.

    GET  /pages/{token}/connect                the session's connectors: OAuth, or a credentials form
    GET  /pages/{token}/connect/{app}          the form built from the connector's auth schema
    POST /pages/{token}/connect/{app}          credentials checked with the app, then saved (or a clear refusal)
    POST /pages/{token}/connect/{app}/oauth    303 to the app's consent page (the callback is /oauth/callback)
    GET  /pages/{token}/status                 what is synced, when, the errors, "reconnect" when needed
    GET  /pages/{token}/mapping                the field mapping editor; POST saves (or resets) the tenant's layer
    POST /pages/{token}/mapping/preview        JSON: the edited mapping on the tenant's own stored records

Every POST carries the session's CSRF token; answers are `no-store`, send no referrer, and may be framed by
the origins in INLET_API__FRAME_ANCESTORS (default: any, since a page opens only with its session's token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from inlet import service
from inlet.errors import ConfigError, CredentialsRefused, NotFound, RateLimited, Refused
from inlet.pages import views
from inlet.pages.forms import csrf_token, csrf_valid, parse_form
from inlet.service import Installation, Principal
from mappings import MappingError

__all__ = ["create_pages"]

_HERE = Path(__file__).parent
_Handler = Callable[[Request, Principal, str], Awaitable[Response]]


def create_pages(inst: Installation) -> Starlette:
    """The pages as an ASGI app; mount it at `/pages`."""
    pages = _Pages(inst)
    return Starlette(
        routes=[
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
            Route("/{token}/connect", pages.guarded(pages.connect), methods=["GET"]),
            Route("/{token}/connect/{app}", pages.guarded(pages.connect_form), methods=["GET", "POST"]),
            Route("/{token}/connect/{app}/oauth", pages.guarded(pages.connect_oauth), methods=["POST"]),
            Route("/{token}/status", pages.guarded(pages.status), methods=["GET"]),
            Route("/{token}/mapping", pages.guarded(pages.mapping), methods=["GET", "POST"]),
            Route("/{token}/mapping/preview", pages.guarded(pages.preview), methods=["POST"]),
        ]
    )


class _Pages:
    def __init__(self, inst: Installation) -> None:
        self.inst = inst
        self.env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True))
        self.env.filters["when"] = _when

    def guarded(self, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        """Open the session, check the CSRF token of a POST, and turn refusals into pages."""

        async def endpoint(request: Request) -> Response:
            token = request.path_params["token"]
            try:
                principal = await run_in_threadpool(self._session, request, token)
                request.state.principal = principal
                form = parse_form(await request.body()) if request.method == "POST" else {}
                presented = form.get("csrf") or request.headers.get("x-csrf-token")
                if request.method == "POST" and not csrf_valid(token, presented):
                    return self.message(request, 403, "Refused", "This form is stale or was not sent from this page.")
                request.state.form = form
                return await handler(request, principal, token)
            except Refused as exc:
                return self.message(request, 403, "Not allowed", str(exc))
            except NotFound as exc:
                return self.message(request, 404, "Not found", str(exc))
            except RateLimited as exc:
                return self.message(request, 429, "Too many attempts", str(exc), {"Retry-After": str(exc.retry_after)})

        return endpoint

    def _session(self, request: Request, token: str) -> Principal:
        if not token.startswith("cs_"):
            raise Refused("this page opens only with a connect session")
        try:
            return service.authenticate(self.inst, token, client=request.client.host if request.client else "-")
        except Refused:
            raise Refused("this link has expired or is not valid; open it again from the app") from None

    # -- pages ------------------------------------------------------------------------------------------

    async def connect(self, request: Request, principal: Principal, token: str) -> Response:
        cards = await run_in_threadpool(views.connect_cards, self.inst, principal)
        return self.render(request, token, "connect.html", "connect", cards=cards)

    async def connect_form(self, request: Request, principal: Principal, token: str) -> Response:
        app = request.path_params["app"]
        form: dict[str, str] = request.state.form
        error, status = None, 200
        if request.method == "POST":
            limit = self.inst.settings.api.credential_checks_per_minute
            await run_in_threadpool(service.check_rate, self.inst, f"credentials:{principal.actor}", limit)
            try:
                await run_in_threadpool(views.submit_credentials, self.inst, principal, app, form)
                return RedirectResponse(f"/pages/{token}/status?connected={app}", status_code=303)
            except (CredentialsRefused, ConfigError) as exc:
                error, status = str(exc), 422
        fields = views.credential_form(principal, app)
        return self.render(
            request, token, "credentials.html", "connect", status=status, error=error, values=form, **fields
        )

    async def connect_oauth(self, request: Request, principal: Principal, token: str) -> Response:
        app = request.path_params["app"]
        limit = self.inst.settings.api.credential_checks_per_minute
        await run_in_threadpool(service.check_rate, self.inst, f"credentials:{principal.actor}", limit)
        service.authorize(principal, "write", tenant=principal.tenant, connector=app)
        url = await run_in_threadpool(
            service.start_oauth,
            self.inst,
            tenant_id=str(principal.tenant),
            app=app,
            connection_id=f"{principal.tenant}-{app}",
            parameters=dict(principal.parameters.get(app, {})),
        )
        return RedirectResponse(url, status_code=303)

    async def status(self, request: Request, principal: Principal, token: str) -> Response:
        context = await run_in_threadpool(views.status_context, self.inst, principal)
        connected = request.query_params.get("connected")
        return self.render(request, token, "status.html", "status", connected=connected, **context)

    async def mapping(self, request: Request, principal: Principal, token: str) -> Response:
        form: dict[str, str] = request.state.form
        notice = error = preview = None
        try:
            if form.get("action") == "preview":
                preview = await run_in_threadpool(views.preview_json, self.inst, principal, form)
            elif request.method == "POST":
                notice = await run_in_threadpool(self._save_mapping, principal, form)
        except (ConfigError, MappingError) as exc:  # MappingError names the field and the reason
            error = str(exc)
        connection = form.get("connection") or request.query_params.get("connection")
        kept = form if (error or preview) else None
        context = await run_in_threadpool(views.mapping_context, self.inst, principal, connection, kept)
        return self.render(
            request,
            token,
            "mapping.html",
            "mapping",
            status=422 if error else 200,
            notice=notice,
            error=error,
            preview=preview,
            **context,
        )

    def _save_mapping(self, principal: Principal, form: dict[str, str]) -> str:
        tenant = str(principal.tenant)
        if form.get("action") == "reset":
            service.reset_mapping(self.inst, tenant, None)
            return "The default mapping applies again."
        change = views.mapping_change(self.inst, principal, form)
        if not change.set_fields:
            return "Nothing changed."
        service.set_mapping(self.inst, tenant, None, change)
        return f"Saved: {', '.join(sorted(change.set_fields))}. Your next sync sends records mapped this way."

    async def preview(self, request: Request, principal: Principal, token: str) -> Response:
        try:
            body = await run_in_threadpool(views.preview_json, self.inst, principal, request.state.form)
        except ConfigError as exc:
            body = {"records": [], "checked": 0, "would_quarantine": 0, "quarantined_now": 0, "mapping_error": str(exc)}
        return Response(orjson.dumps(body, default=str), media_type="application/json", headers=_HEADERS)

    # -- rendering --------------------------------------------------------------------------------------

    def render(
        self, request: Request, token: str, template: str, page: str, *, status: int = 200, **context: Any
    ) -> Response:
        html = self.env.get_template(template).render(
            base=f"/pages/{token}", page=page, csrf=csrf_token(token), tenant=request.state.principal.tenant, **context
        )
        return HTMLResponse(html, status_code=status, headers=self._headers())

    def message(
        self, request: Request, status: int, title: str, text: str, extra: dict[str, str] | None = None
    ) -> Response:
        html = self.env.get_template("message.html").render(title=title, text=text)
        return HTMLResponse(html, status_code=status, headers={**self._headers(), **(extra or {})})

    def _headers(self) -> dict[str, str]:
        ancestors = self.inst.settings.api.frame_ancestors
        policy = f"default-src 'self'; img-src 'self' data:; frame-ancestors {ancestors}"
        return {**_HEADERS, "Content-Security-Policy": policy}


_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def _when(value: str) -> str:
    """`2026-12-07T02:29:24+00:00 completed` as `2026-12-07 02:29 UTC completed`; other text as it is."""
    stamp, _, rest = value.partition(" ")
    if len(stamp) >= 16 and stamp[10:11] == "T":
        return f"{stamp[:10]} {stamp[11:16]} UTC{' ' + rest if rest else ''}"
    return value
