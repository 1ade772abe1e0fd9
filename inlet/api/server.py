"""What `inlet serve` runs: the webhook receiver and its OAuth routes at the root, the API at `/api` and the tenant
pages at `/pages` (their changes audited like the API's). One ASGI app, bound to 127.0.0.1 unless the operator
says otherwise."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from inlet.api.app import API_PREFIX, create_api
from inlet.api.auth import AuditMiddleware
from inlet.api.problems import problem_response
from inlet.pages import create_pages
from inlet.receiver import create_receiver
from inlet.service import Installation

__all__ = ["create_server"]


def create_server(inst: Installation, notify: Callable[[str, str], None]) -> Starlette:
    receiver = create_receiver(
        inst.engine, inst.vault, notify, settings=inst.settings, receipt_seconds=inst.settings.webhook_receipt_seconds
    )
    return Starlette(
        exception_handlers={404: _unrouted, 405: _unrouted},
        routes=[
            Mount(API_PREFIX, app=create_api(inst)),
            Mount("/pages", app=AuditMiddleware(create_pages(inst), installation=lambda: inst, prefix="/pages")),
            *receiver.routes,
        ],
    )


async def _unrouted(request: Request, exc: Exception) -> Response:
    """A path no route takes (even one the mounts cannot read, such as one holding a newline): a problem."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return problem_response(request, status, "not-found" if status == 404 else "method-not-allowed", "No route", None)
