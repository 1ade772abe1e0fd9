"""The HTTP API for the team's backend (FastAPI), mounted at `/api` by `inlet serve`; OpenAPI at
`/api/openapi.json`, the docs at `/api/docs`. Every route is a thin client of `inlet.service`."""

from __future__ import annotations

from fastapi import FastAPI

from inlet.api import inbox, mappings, operations, push, sync, tenants
from inlet.api.auth import AuditMiddleware
from inlet.api.problems import PROBLEM_RESPONSES, install_problem_handlers
from inlet.service import Installation

__all__ = ["API_PREFIX", "create_api"]

API_PREFIX = "/api"
_DESCRIPTION = """Embed inlet in your product: manage tenants and their connections, field mappings, imports,
quarantine, poison inbox events and deliveries from your backend, and open connect sessions for your tenants' browsers.

Authenticate with `Authorization: Bearer <API key>` (scopes read < write < admin;
`inlet api-keys create --name NAME --scope admin`).
A connect session's token works as a bearer too, for its own tenant only. Errors are RFC 9457 problem details;
every list is paged with `limit` and `cursor` (the `next_cursor` of the previous page)."""


def create_api(inst: Installation) -> FastAPI:
    """The API app; mount it at `/api` (its OpenAPI document names that as its server)."""
    api = FastAPI(
        title="inlet",
        version="1",
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        servers=[{"url": API_PREFIX}],
        responses=PROBLEM_RESPONSES,
    )
    api.state.installation = inst
    for router in (tenants.router, sync.router, inbox.router, mappings.router, operations.router, push.router):
        api.include_router(router)
    install_problem_handlers(api)
    api.add_middleware(AuditMiddleware, installation=lambda: inst, prefix=API_PREFIX)
    return api
