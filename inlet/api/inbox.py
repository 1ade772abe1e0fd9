"""Routes: a tenant's poison inbox events (changes set aside with their reason so the rest of the connection's
inbox is applied), listed, put back into the drain once the cause is fixed, or dropped. The team's backend only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from inlet import service
from inlet.api.auth import Inst, allow
from inlet.api.models import MAX_ROW_ID, Paged, PoisonChoiceIn, PoisonCount, PoisonOut
from inlet.service import MAX_LIMIT, Principal

__all__ = ["router"]

router = APIRouter(prefix="/tenants/{tenant}/inbox/poison", tags=["inbox"])
BackendReader = Annotated[Principal, Depends(allow("read"))]
BackendWriter = Annotated[Principal, Depends(allow("write"))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
EventId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the poison event's id, as listed")]


@router.get("", response_model=Paged[PoisonOut])
def list_poison(
    tenant: str,
    inst: Inst,
    _: BackendReader,
    connection: Annotated[str | None, Query(max_length=100, description="only this connection's")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> object:
    """The tenant's poison events, oldest first, each with why it was set aside."""
    return service.poison_page(inst, tenant, connection, cursor=cursor, limit=limit)


@router.post("/retry", response_model=PoisonCount)
def retry_poison(tenant: str, body: PoisonChoiceIn, inst: Inst, _: BackendWriter) -> PoisonCount:
    """Put poison events back into the drain (after the app or the connector was fixed); the connection's next
    poll or webhook applies them, or sets them aside again."""
    return PoisonCount(events=service.retry_poison(inst, tenant, None if body.all else body.ids))


@router.post("/drop", response_model=PoisonCount)
def drop_poison(tenant: str, body: PoisonChoiceIn, inst: Inst, _: BackendWriter) -> PoisonCount:
    """Give up on poison events: they are deleted."""
    return PoisonCount(events=service.drop_poison(inst, tenant, None if body.all else body.ids))


@router.delete("/{event_id}", status_code=204)
def drop_one_poison(tenant: str, event_id: EventId, inst: Inst, _: BackendWriter) -> Response:
    """Give up on one poison event."""
    service.drop_one_poison(inst, tenant, event_id)
    return Response(status_code=204)
