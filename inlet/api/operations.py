"""Routes for the team's backend only: deliveries (status, dead letters, replay), API keys and the audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from inlet import service
from inlet.api.auth import Inst, allow
from inlet.api.models import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    AuditOut,
    DeliveryOut,
    DestinationOut,
    Paged,
    Replayed,
    ReplayIn,
)
from inlet.service import MAX_LIMIT, Principal

__all__ = ["router"]

router = APIRouter()
Reader = Annotated[Principal, Depends(allow("read"))]
Writer = Annotated[Principal, Depends(allow("write"))]
Admin = Annotated[Principal, Depends(allow("admin"))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("/deliveries/status", response_model=list[DestinationOut], tags=["deliveries"])
def delivery_status(inst: Inst, _: Reader) -> object:
    """Per destination: pending, parked, dead letters, the oldest pending age, the circuit breaker."""
    return service.delivery_status(inst)


@router.get("/deliveries", response_model=Paged[DeliveryOut], tags=["deliveries"])
def list_deliveries(
    inst: Inst,
    _: Reader,
    status: Annotated[Literal["pending", "dead"], Query(description="dead: the dead letters")] = "pending",
    tenant: Annotated[str | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> object:
    return service.list_deliveries(inst, status, tenant, cursor=cursor, limit=limit)


@router.post("/deliveries/replay", response_model=Replayed, tags=["deliveries"])
def replay(body: ReplayIn, inst: Inst, _: Writer) -> Replayed:
    """Make dead letters pending again (after the app was fixed); the deliver-outbox schedule sends them in order."""
    return Replayed(replayed=service.replay_selected(inst, ids=body.ids, tenant=body.tenant, every=body.all))


@router.get("/api-keys", response_model=Paged[ApiKeyOut], tags=["api keys"])
def list_api_keys(inst: Inst, _: Admin, limit: Limit = 100, cursor: Cursor = None) -> object:
    return service.list_keys(inst, cursor=cursor, limit=limit)


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, tags=["api keys"])
def create_api_key(body: ApiKeyIn, inst: Inst, _: Admin) -> ApiKeyCreated:
    """A new key; `key` is shown in this answer only."""
    row, key = service.create_api_key(inst, body.name, body.scopes)
    return ApiKeyCreated.model_validate({**row.model_dump(), "key": key})


@router.delete("/api-keys/{key_id}", status_code=204, tags=["api keys"])
def revoke_api_key(key_id: str, inst: Inst, _: Admin) -> Response:
    service.revoke_key(inst, key_id)
    return Response(status_code=204)


@router.get("/audit", response_model=Paged[AuditOut], tags=["audit"])
def audit(
    inst: Inst, _: Admin, tenant: Annotated[str | None, Query()] = None, limit: Limit = 100, cursor: Cursor = None
) -> object:
    """Every change made through the API and the pages, newest first."""
    return service.audit_log(inst, tenant, cursor=cursor, limit=limit)
