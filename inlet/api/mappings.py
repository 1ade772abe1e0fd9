"""Routes: a tenant's field mappings (each layer, set, validate, preview, reset) and its quarantined records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from inlet import service
from inlet.api.auth import Inst, allow
from inlet.api.models import (
    MAX_ROW_ID,
    MappingChangeIn,
    MappingOut,
    Paged,
    PreviewIn,
    PreviewOut,
    QuarantinedOut,
    ResetOut,
    RetryIn,
    RunOut,
    ValidationOut,
)
from inlet.service import MAX_LIMIT, MappingChange, Principal

__all__ = ["router"]

router = APIRouter(tags=["mappings"])
Reader = Annotated[Principal, Depends(allow("read", sessions=True))]
Writer = Annotated[Principal, Depends(allow("write", sessions=True))]
BackendWriter = Annotated[Principal, Depends(allow("write"))]
ConnectionQuery = Annotated[str | None, Query(description="a connection's layer; none: the tenant's")]
DataSource = Annotated[str, Query(max_length=50)]


def _change(body: MappingChangeIn) -> MappingChange:
    return MappingChange(set_fields=body.set, unset_fields=tuple(body.unset))


@router.get("/tenants/{tenant}/mappings", response_model=MappingOut)
def read_mapping(
    tenant: str, inst: Inst, _: Reader, connection: ConnectionQuery = None, data_source: DataSource = "users"
) -> object:
    """The effective mapping field by field with the layer each comes from, the stored layers, the app schema."""
    return service.mapping_view(inst, tenant, connection, data_source)


@router.patch("/tenants/{tenant}/mappings", response_model=MappingOut)
def set_mapping(tenant: str, body: MappingChangeIn, inst: Inst, _: Writer) -> object:
    """Change the tenant's (or a connection's) layer; refused, with the field and the reason, when invalid."""
    return service.set_mapping(inst, tenant, body.connection, _change(body), body.data_source)


@router.post("/tenants/{tenant}/mappings/validate", response_model=ValidationOut)
def validate_mapping(tenant: str, body: MappingChangeIn, inst: Inst, _: Reader) -> ValidationOut:
    error = service.validate_mapping(inst, tenant, body.connection, _change(body), body.data_source)
    return ValidationOut(valid=error is None, error=error)


@router.post("/tenants/{tenant}/mappings/preview", response_model=PreviewOut)
def preview_mapping(tenant: str, body: PreviewIn, inst: Inst, _: Reader) -> object:
    """Map the connection's stored records with the change (nothing saved): a few shown, and how many of the
    stored records it would quarantine, next to how many the current mapping does."""
    change = MappingChange(set_fields=body.set, unset_fields=tuple(body.unset))
    return service.preview_mapping(
        inst, tenant, body.connection, change, level=body.level, data_source=body.data_source, limit=body.limit
    )


@router.delete("/tenants/{tenant}/mappings", response_model=ResetOut)
def reset_mapping(
    tenant: str, inst: Inst, _: Writer, connection: ConnectionQuery = None, data_source: DataSource = "users"
) -> ResetOut:
    """Back to the defaults: drop the tenant's (or the connection's) stored layer."""
    return ResetOut(reset=service.reset_mapping(inst, tenant, connection, data_source))


@router.get("/tenants/{tenant}/quarantine", response_model=Paged[QuarantinedOut], tags=["quarantine"])
def list_quarantine(
    tenant: str,
    inst: Inst,
    _: Reader,
    connection: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> object:
    return service.list_quarantine(inst, tenant, connection, cursor=cursor, limit=limit)


@router.post("/tenants/{tenant}/quarantine/retry", response_model=RunOut, status_code=202, tags=["quarantine"])
def retry_quarantine(tenant: str, body: RetryIn, inst: Inst, _: BackendWriter) -> object:
    """Map quarantined records again (a flow run of the `retry-quarantine` deployment); those that pass are sent."""
    return service.start_retry(inst, tenant, body.connection, body.ids)


@router.delete("/tenants/{tenant}/quarantine/{record_id}", status_code=204, tags=["quarantine"])
def drop_quarantined(
    tenant: str, record_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], inst: Inst, _: Writer
) -> Response:
    """Give up on one quarantined record."""
    service.drop_one_quarantined(inst, tenant, record_id)
    return Response(status_code=204)
