"""The demo app's schema endpoint: the JSON Schema of the records it accepts, per tenant.

GET  /inlet/schemas/{data_source}?tenant=T   signed (Standard Webhooks over the request target) -> schema
POST /_demo/schemas   {"tenant": "demo", "data_source": "users", "schema": {...}}: that tenant's schema
GET  /_demo/schemas   {"fetches": n}: how many signed schema requests were answered
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inlet.delivery import verify
from inlet.errors import SignatureError

__all__ = ["USERS_SCHEMA", "SchemaEndpoints"]

_TEXT: dict[str, Any] = {"type": ["string", "null"]}
USERS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "demo app user",
    "type": "object",
    "required": ["email"],
    "properties": {
        "email": {"type": ["string", "null"], "maxLength": 320},
        "fullName": _TEXT,
        "firstName": _TEXT,
        "lastName": _TEXT,
        "phone": _TEXT,
        "company": _TEXT,
        "title": _TEXT,
        "active": {"type": ["boolean", "null"]},
        "sourceUpdatedAt": _TEXT,
    },
}


class _SchemaSetting(BaseModel):
    tenant: str
    data_source: str = "users"
    schema_: dict[str, Any] = Field(alias="schema")  # `schema` itself would shadow a BaseModel method


class SchemaEndpoints:
    """Per-tenant schemas in memory, the default for every other tenant."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = list(secrets)
        self.schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self.fetches = 0

    def routes(self) -> list[Route]:
        return [
            Route("/inlet/schemas/{data_source}", self.get, methods=["GET"]),
            Route("/_demo/schemas", self.set, methods=["POST"]),
            Route("/_demo/schemas", self.stats, methods=["GET"]),
        ]

    async def get(self, request: Request) -> Response:
        query = request.scope.get("query_string", b"")
        target = request.scope.get("raw_path", request.url.path.encode()) + (b"?" + query if query else b"")
        try:
            verify(self.secrets, request.headers, target)
        except SignatureError as exc:
            return JSONResponse({"error": f"signature verification failed: {exc}"}, 401)
        data_source, tenant = request.path_params["data_source"], request.query_params.get("tenant", "")
        schema = self.schemas.get((tenant, data_source)) or (USERS_SCHEMA if data_source == "users" else None)
        if schema is None:
            return JSONResponse({"error": f"no schema for {data_source}"}, 404)
        self.fetches += 1
        return JSONResponse(schema)

    async def set(self, request: Request) -> Response:
        try:
            setting = _SchemaSetting.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": str(exc.errors(include_input=False)[0]["msg"])}, 400)
        self.schemas[(setting.tenant, setting.data_source)] = setting.schema_
        return JSONResponse({"ok": True})

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"fetches": self.fetches})
