"""Errors as RFC 9457 problem details (`application/problem+json`): one handler per branch of inlet's error tree.

    {"type": "urn:inlet:problem:not-found", "title": "Not found", "status": 404,
     "detail": "no tenant 'globex'; ...", "instance": "/api/tenants/globex"}

Details are the errors' own messages, which never hold a secret; an unexpected failure is a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.errors import SpecError
from inlet.errors import (
    ConfigError,
    Conflict,
    CredentialsRefused,
    InletError,
    NotFound,
    RateLimited,
    Refused,
    SignatureError,
    Unavailable,
)
from mappings import MappingError

__all__ = ["PROBLEM_RESPONSES", "Problem", "Unauthenticated", "install_problem_handlers", "problem_response"]

logger = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="the invalid fields, for a request that failed")


class Unauthenticated(InletError):
    """No key or session, or one inlet does not know (401)."""


_KINDS: list[tuple[type[Exception], int, str, str]] = [
    (Unauthenticated, 401, "unauthenticated", "Unauthenticated"),
    (Refused, 403, "forbidden", "Forbidden"),
    (SignatureError, 401, "bad-signature", "Not authentic"),
    (NotFound, 404, "not-found", "Not found"),
    (Conflict, 409, "conflict", "Conflict"),
    (CredentialsRefused, 422, "credentials-refused", "Credentials refused"),
    (MappingError, 422, "invalid-mapping", "Invalid mapping"),
    (SpecError, 422, "invalid-input", "Invalid input"),
    (ConfigError, 422, "invalid-input", "Invalid input"),
    (RateLimited, 429, "rate-limited", "Too many requests"),
    (Unavailable, 503, "unavailable", "Unavailable"),
]
_DESCRIPTIONS = {
    400: "the body could not be read (not JSON)",
    401: "no API key or session, or an unknown one",
    403: "the key or session may not do this",
    404: "no such tenant, connection or record (for this caller)",
    409: "it already exists",
    422: "the request, the credentials or the mapping was refused; `detail` says why",
    429: "too many attempts; retry after the Retry-After header's seconds",
    503: "the Prefect server (or the deployment) is not there",
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "model": Problem, "content": {MEDIA_TYPE: {}}}
    for status, description in _DESCRIPTIONS.items()
}


def problem_response(
    request: Request, status: int, kind: str, title: str, detail: str | None, **extra: Any
) -> Response:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = Problem(
        type=f"urn:inlet:problem:{kind}", title=title, status=status, detail=detail, instance=request.url.path, **extra
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE, headers=headers or None
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Every error becomes a problem document."""

    async def known(request: Request, exc: Exception) -> Response:
        for kind, status, slug, title in _KINDS:
            if isinstance(exc, kind):
                extra = {"retry_after": exc.retry_after} if isinstance(exc, RateLimited) else {}
                return problem_response(request, status, slug, title, str(exc), **extra)
        return await unexpected(request, exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem_response(request, 422, "invalid-request", "Invalid request", detail, errors=errors)

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        slug = {400: "unreadable-body", 404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(request, exc.status_code, slug, str(exc.detail), None)

    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return problem_response(request, 500, "internal", "Internal error", "inlet failed; the server log says why")

    for kind in (InletError, MappingError, SpecError):
        app.add_exception_handler(kind, known)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, unexpected)
