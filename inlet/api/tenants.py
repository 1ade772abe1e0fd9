"""Routes: the connector catalogue, tenants, connections, connect sessions, status and full imports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from inlet import service
from inlet.api.auth import Inst, allow, rate_limited
from inlet.api.models import (
    ConnectionIn,
    ConnectionOut,
    ConnectorOut,
    ConnectSessionIn,
    ConnectSessionOut,
    ImportIn,
    Paged,
    RunOut,
    StatusOut,
    TenantIn,
    TenantOut,
)
from inlet.service import MAX_LIMIT, Page, Principal

__all__ = ["router"]

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
Reader = Annotated[Principal, Depends(allow("read", sessions=True))]
Writer = Annotated[Principal, Depends(allow("write", sessions=True))]
BackendReader = Annotated[Principal, Depends(allow("read"))]
BackendWriter = Annotated[Principal, Depends(allow("write"))]


@router.get("/connectors", response_model=Paged[ConnectorOut], tags=["connectors"])
def list_connectors(_: BackendReader, limit: Limit = 100, cursor: Cursor = None) -> Page[service.ConnectorInfo]:
    """Every connector, with the JSON Schema of the form that connects an account."""
    return service.connector_page(cursor=cursor, limit=limit)


@router.get("/connectors/{name}", response_model=ConnectorOut, tags=["connectors"])
def get_connector(name: str, _: BackendReader) -> service.ConnectorInfo:
    return service.connector_info(name)


@router.get("/tenants", response_model=Paged[TenantOut], tags=["tenants"])
def list_tenants(inst: Inst, _: BackendReader, limit: Limit = 100, cursor: Cursor = None) -> object:
    return service.list_tenants(inst, cursor=cursor, limit=limit)


@router.post("/tenants", response_model=TenantOut, status_code=201, tags=["tenants"])
def create_tenant(body: TenantIn, inst: Inst, _: BackendWriter) -> object:
    return service.create_tenant(inst, body.id, body.name)


@router.get("/tenants/{tenant}", response_model=TenantOut, tags=["tenants"])
def get_tenant(tenant: str, inst: Inst, _: Reader) -> object:
    return service.get_tenant(inst, tenant)


@router.get("/tenants/{tenant}/connections", response_model=Paged[ConnectionOut], tags=["connections"])
def list_connections(tenant: str, inst: Inst, _: Reader, limit: Limit = 100, cursor: Cursor = None) -> object:
    return service.list_connections(inst, tenant, cursor=cursor, limit=limit)


@router.post(
    "/tenants/{tenant}/connections",
    response_model=ConnectionOut,
    status_code=201,
    tags=["connections"],
    dependencies=[Depends(rate_limited("credentials"))],
)
async def create_connection(tenant: str, body: ConnectionIn, inst: Inst, caller: Writer) -> object:
    """Connect an account with credentials; they are checked with one read-only request first (unless check is
    false), and nothing is saved when the app refuses them."""
    return await run_in_threadpool(
        service.connect_with_credentials,
        inst,
        caller,
        tenant=tenant,
        app=body.app,
        connection_id=body.id,
        parameters=body.parameters,
        credentials=body.credentials,
        replace=body.replace,
        check=body.check,
    )


@router.get("/tenants/{tenant}/connections/{connection}", response_model=ConnectionOut, tags=["connections"])
def get_connection(tenant: str, connection: str, inst: Inst, _: Reader) -> object:
    return service.describe_connection(inst, tenant, connection)


@router.delete("/tenants/{tenant}/connections/{connection}", status_code=204, tags=["connections"])
def delete_connection(tenant: str, connection: str, inst: Inst, _: Writer) -> Response:
    """Remove the connection and everything inlet kept for it."""
    service.delete_connection(inst, tenant, connection)
    return Response(status_code=204)


@router.post(
    "/tenants/{tenant}/connections/{connection}/imports",
    response_model=RunOut,
    status_code=202,
    tags=["runs"],
)
def start_import(tenant: str, connection: str, inst: Inst, _: BackendWriter, body: ImportIn | None = None) -> object:
    """Start a full import: a flow run of the `full-import` deployment, which a worker picks up."""
    options = body or ImportIn()
    return service.start_full_import(
        inst, tenant, connection, restart=options.restart, force_delete=options.force_delete
    )


@router.get("/tenants/{tenant}/status", response_model=StatusOut, tags=["status"])
def status(tenant: str, inst: Inst, _: Reader) -> object:
    """Per connection: imports, polls, inbox lag, outbox, dead letters, quarantine, auth (and Prefect's runs)."""
    return service.status_report(inst, tenant)


@router.post(
    "/tenants/{tenant}/connect-sessions",
    response_model=ConnectSessionOut,
    status_code=201,
    tags=["connect sessions"],
    dependencies=[Depends(rate_limited("sessions"))],
)
def create_connect_session(tenant: str, body: ConnectSessionIn, inst: Inst, caller: BackendWriter) -> object:
    """A short-lived session for this tenant's browser: open `url` in an iframe or a popup."""
    return service.open_connect_session(
        inst, caller, tenant, body.connectors, parameters=body.parameters, ttl_seconds=body.ttl_seconds
    )
