"""Routes for pushes from the team's app: a change batch by API key, or signed like inlet's own deliveries
(Standard Webhooks, the tenant's delivery secret, verified on the raw bytes); status, dead letters, replay.
Each answers only once the changes are durable in the push outbox."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from inlet import service
from inlet.api.auth import Inst, allow
from inlet.push import PushRequest
from inlet.service import Principal

__all__ = ["router"]

router = APIRouter()
Reader = Annotated[Principal, Depends(allow("read"))]
Writer = Annotated[Principal, Depends(allow("write"))]


@router.post("/push", status_code=202, tags=["push"])
def push(body: PushRequest, inst: Inst, _: Writer) -> dict[str, Any]:
    """Queue record changes for the tenant's connection (or every connection for the data source)."""
    return service.accept_push(inst, body).__dict__


@router.post("/push/signed", status_code=202, tags=["push"])
async def push_signed(request: Request, inst: Inst) -> dict[str, Any]:
    """The same, authenticated by its Standard Webhooks signature instead of an API key; 401 when forged or stale."""
    body = await request.body()
    accepted = await run_in_threadpool(service.accept_signed_push, inst, body, dict(request.headers))
    return accepted.__dict__


@router.get("/push/status", tags=["push"])
def push_status(inst: Inst, _: Reader) -> list[dict[str, Any]]:
    """Per connection: pending, deferred and dead pushes, written, failed, conflicts, echoes suppressed."""
    return [figures.__dict__ for figures in service.push_status(inst)]


@router.post("/push/replay", tags=["push"])
def push_replay(inst: Inst, _: Writer, tenant: str | None = None, every: bool = False) -> dict[str, int]:
    """Dead pushes back to pending, in their original order."""
    return {"replayed": service.replay_push_letters(inst, tenant=tenant, every=every)}
