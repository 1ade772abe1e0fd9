"""Routes: a connection's continuity (its sync policy, pause and resume, a full import or a reconciliation out
of turn). Due work is stored; the scheduler submits it to the task workers at its next tick."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from inlet import service
from inlet.api.auth import Inst, allow
from inlet.api.models import SyncIn, SyncOut
from inlet.service import Principal

__all__ = ["router"]

router = APIRouter(prefix="/tenants/{tenant}/connections/{connection}", tags=["sync"])
Reader = Annotated[Principal, Depends(allow("read", sessions=True))]
BackendWriter = Annotated[Principal, Depends(allow("write"))]


@router.get("/sync", response_model=SyncOut)
def get_sync(tenant: str, connection: str, inst: Inst, _: Reader) -> object:
    """The connection's policy and how its continuity stands: change source, last and next poll, lag, drift."""
    return service.sync_of(inst, tenant, connection)


@router.patch("/sync", response_model=SyncOut)
def set_sync(tenant: str, connection: str, body: SyncIn, inst: Inst, _: BackendWriter) -> object:
    """Change the poll interval, the reconciliation interval or webhooks on/off; what is left out stays."""
    service.set_policy(
        inst,
        tenant,
        connection,
        poll_seconds=body.poll_seconds,
        reconcile_seconds=body.reconcile_seconds,
        webhooks=body.webhooks,
    )
    return service.sync_of(inst, tenant, connection)


@router.post("/pause", response_model=SyncOut)
def pause(tenant: str, connection: str, inst: Inst, _: BackendWriter) -> object:
    """Stop polling, importing and reconciling the connection (a run under way finishes)."""
    service.pause(inst, tenant, connection)
    return service.sync_of(inst, tenant, connection)


@router.post("/resume", response_model=SyncOut)
def resume(tenant: str, connection: str, inst: Inst, _: BackendWriter) -> object:
    """Run the connection again; what fell due while it was paused is submitted at the next tick."""
    service.resume(inst, tenant, connection)
    return service.sync_of(inst, tenant, connection)


@router.post("/reconciliations", response_model=SyncOut, status_code=202)
def start_reconciliation(tenant: str, connection: str, inst: Inst, _: BackendWriter) -> object:
    """A reconciliation at the scheduler's next tick: a full sync diffed against what inlet holds, repairing what
    the change source missed and reporting it as drift (GET .../sync shows it once done)."""
    service.request_reconciliation(inst, tenant, connection)
    return service.sync_of(inst, tenant, connection)


@router.post("/sync/imports", response_model=SyncOut, status_code=202)
def request_import(tenant: str, connection: str, inst: Inst, _: BackendWriter) -> object:
    """A full import at the scheduler's next tick, in a task worker (POST .../imports instead starts one as a
    run of the `full-import` deployment at once)."""
    service.request_import(inst, tenant, connection)
    return service.sync_of(inst, tenant, connection)
