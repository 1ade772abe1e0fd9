"""Pushes from the team's app to its tenants' apps: accept them (signed or through the API), durable before
the answer; their status, dead letters and replay. The writes themselves run in the `push-outbox` flow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from pydantic import ValidationError

from inlet.delivery import destination_for
from inlet.delivery.signing import verify
from inlet.errors import ConfigError, NotFound, SignatureError
from inlet.push import PushRequest, change_id
from inlet.service.installation import Installation
from inlet.store import (
    Connection,
    PushChange,
    dead_pushes,
    enqueue,
    list_connections,
    push_counts,
    push_stats,
    replay_pushes,
)

__all__ = [
    "PushAccepted",
    "PushFigures",
    "accept_push",
    "accept_signed_push",
    "dead_push_letters",
    "push_status",
    "replay_push_letters",
]

MAX_PUSH_BYTES = 5_000_000


@dataclass(frozen=True)
class PushAccepted:
    """What a push became: rows queued (durable), repeats dropped, per connection."""

    queued: int
    duplicates: int
    connections: list[str]
    ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PushFigures:
    """One connection's push side, for `inlet status`."""

    connection: str
    data_source: str
    pending: int
    deferred: int
    dead: int
    written: int
    failed: int
    conflicts: int
    echo_suppressed: int
    last_push_at: datetime | None
    oldest_pending: datetime | None


def accept_push(inst: Installation, request: PushRequest, *, message_id: str | None = None) -> PushAccepted:
    """Queue the request's changes for each connection it names; committed before this returns."""
    targets = _targets(inst, request)
    changes = [
        PushChange(
            tenant_id=request.tenant,
            connection_id=connection.id,
            data_source=request.data_source,
            app_id=change.app_id,
            type=change.type,
            record=change.record,
            change_id=change_id(change, message_id, index),
            occurred_at=change.occurred_at,
            external_id=change.external_id if len(targets) == 1 else None,
        )
        for connection in targets
        for index, change in enumerate(request.changes)
    ]
    rows = enqueue(inst.engine, changes)
    return PushAccepted(
        queued=sum(new for _, new in rows),
        duplicates=sum(not new for _, new in rows),
        connections=[c.id for c in targets],
        ids=[row_id for row_id, _ in rows],
    )


def accept_signed_push(inst: Installation, body: bytes, headers: Mapping[str, str]) -> PushAccepted:
    """A push the team's app signed (Standard Webhooks, the delivery secret of the tenant it names): verified on
    the raw bytes before anything else is read from it; SignatureError when it is not authentic or fresh."""
    if len(body) > MAX_PUSH_BYTES:
        raise ConfigError(f"a push body is at most {MAX_PUSH_BYTES} bytes")
    tenant = _claimed_tenant(body)
    try:
        secrets = [s.get_secret_value() for s in destination_for(inst.engine, inst.settings, tenant).secrets]
    except NotFound:
        raise SignatureError("the push is not signed by a known tenant's secret") from None
    verify(secrets, headers, body)
    try:
        request = PushRequest.model_validate_json(body)
    except ValidationError as exc:
        raise ConfigError(f"the push is not valid: {_first_error(exc)}") from None
    message_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id")
    return accept_push(inst, request, message_id=message_id)


def push_status(inst: Installation, tenant: str | None = None) -> list[PushFigures]:
    """One row per connection that has pushed or has pushes waiting."""
    connections = {c.id: c for c in list_connections(inst.engine, tenant)}
    figures: list[PushFigures] = []
    for stat in push_stats(inst.engine):
        if stat.connection_id not in connections:
            continue
        counts = push_counts(inst.engine, stat.connection_id)
        figures.append(
            PushFigures(
                connection=stat.connection_id,
                data_source=stat.data_source,
                pending=counts.pending,
                deferred=counts.deferred,
                dead=counts.dead,
                written=stat.written,
                failed=stat.failed,
                conflicts=stat.conflicts,
                echo_suppressed=stat.echo_suppressed,
                last_push_at=stat.last_push_at,
                oldest_pending=counts.oldest_pending,
            )
        )
    seen = {f.connection for f in figures}
    for connection_id in connections:
        counts = push_counts(inst.engine, connection_id)
        if connection_id not in seen and (counts.pending or counts.dead):
            figures.append(
                PushFigures(
                    connection_id,
                    connections[connection_id].data_source,
                    counts.pending,
                    counts.deferred,
                    counts.dead,
                    0,
                    0,
                    0,
                    0,
                    None,
                    counts.oldest_pending,
                )
            )
    return figures


def dead_push_letters(inst: Installation, tenant: str | None = None) -> list[dict[str, object]]:
    return dead_pushes(inst.engine, tenant)


def replay_push_letters(
    inst: Installation, *, ids: Sequence[int] | None = None, tenant: str | None = None, every: bool = False
) -> int:
    """Dead pushes back to pending (in their original order); refuses a call that names none."""
    if not (ids or tenant or every):
        raise ConfigError("say which dead pushes: ids, a tenant, or all")
    return replay_pushes(inst.engine, ids=list(ids) if ids else None, tenant_id=tenant)


def _targets(inst: Installation, request: PushRequest) -> list[Connection]:
    connections = list_connections(inst.engine, request.tenant)
    if request.connection is not None:
        chosen = [c for c in connections if c.id == request.connection]
        if not chosen:
            raise NotFound(f"tenant {request.tenant!r} has no connection {request.connection!r}")
        if chosen[0].data_source != request.data_source:
            raise ConfigError(
                f"connection {request.connection!r} provides {chosen[0].data_source!r}, not {request.data_source!r}"
            )
        return chosen
    chosen = [c for c in connections if c.data_source == request.data_source]
    if not chosen:
        raise NotFound(f"tenant {request.tenant!r} has no connection for data source {request.data_source!r}")
    return chosen


def _claimed_tenant(body: bytes) -> str:
    """The tenant the body names, to pick the secret it must be signed with (it is trusted only once verified)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SignatureError("the push body is not JSON") from None
    tenant = document.get("tenant") if isinstance(document, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise SignatureError("the push body names no tenant")
    return tenant


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
