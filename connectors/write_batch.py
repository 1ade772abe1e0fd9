"""Batch writes: many creates, updates or deletes of one collection in one request, where the app has a batch
endpoint (`writes.batch:` in connector.yaml; HubSpot's `batch/create|update|archive`).

    results = await write_batch(connector, [WriteOp("create", "contacts", None, {...}, "push-1"), ...])

All ops must be of one kind and one collection, at most `batch_limit` of them. The app writes all or none
(HubSpot without multi-status): a refusal is one `WriteRejected` for the batch, and the caller writes the
records one by one (`write`) to learn which one is bad. A batch is resent only when the app refused it before
doing any work (429); any other transient failure comes back to the caller, as for a single create.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from connectors.base import Connector
from connectors.budget import full_jitter
from connectors.errors import FatalError, MalformedPage, RetryableError
from connectors.paths import lookup
from connectors.write_spec import BatchCall, WritesSpec
from connectors.writes import (
    ANSWERED,
    Context,
    WriteOp,
    WriteResult,
    check_id,
    json_or_none,
    kept_fields,
    refusal,
    render,
    writes_of,
)

__all__ = ["write_batch"]


async def write_batch(connector: Connector, ops: Sequence[WriteOp]) -> list[WriteResult]:
    """Write `ops` in one request; the results in the order of `ops`."""
    if not ops:
        return []
    kind, source = ops[0].kind, ops[0].data_source
    if any(op.kind != kind or op.data_source != source for op in ops):
        raise FatalError("write_batch: every op must be of one kind and one data source", connector=connector.name)
    collection, spec = writes_of(connector, source)
    call = spec.batch.get(kind)
    if call is None:
        raise FatalError(f"{connector.name}.{collection} has no batch {kind}", connector=connector.name)
    if spec.batch_limit is not None and len(ops) > spec.batch_limit:
        raise FatalError(
            f"{connector.name}.{collection}: {len(ops)} ops, at most {spec.batch_limit} per batch",
            connector=connector.name,
        )
    items, dropped = [], []
    for op in ops:
        if kind != "create":
            check_id(connector, collection, op.external_id)
        kept, left_out = kept_fields(spec, op)
        dropped.append(left_out)
        items.append(render(call.item, Context(kept, op.etag, op.external_id, key=op.idempotency_key)))
    body = render(call.body, Context({}, None, None, items=items))
    request = connector.write_request(call.method, call.path, path_values={}, params={}, headers={}, json=body)
    response = await _send(connector, request)
    if not 200 <= response.status_code < 300:
        parsed = json_or_none(response)
        raise refusal(connector, collection, spec, ops[0], response, parsed, connector.redact(str(request.url)))
    return _results(connector, collection, spec, call, ops, response, dropped)


async def _send(connector: Connector, request: httpx.Request) -> httpx.Response:
    policy = connector.retry_policy
    for attempt in range(1, policy.attempts + 1):
        answer = await connector.attempt(request, ANSWERED)
        if isinstance(answer, httpx.Response):
            return answer
        retry = isinstance(answer, RetryableError) and answer.status == 429 and attempt < policy.attempts
        if not retry:
            raise answer
        assert isinstance(answer, RetryableError)
        wait = answer.retry_after
        if wait is None:
            wait = full_jitter(attempt, policy.backoff_seconds, policy.max_backoff_seconds)
        if wait > policy.max_wait_seconds:
            raise answer
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _results(
    connector: Connector,
    collection: str,
    spec: WritesSpec,
    call: BatchCall,
    ops: Sequence[WriteOp],
    response: httpx.Response,
    dropped: list[tuple[str, ...]],
) -> list[WriteResult]:
    if call.results_path is None:  # an archive answers 204: every id is gone
        return [WriteResult(op.external_id or "", None, None, None, d) for op, d in zip(ops, dropped, strict=True)]
    records = lookup(json_or_none(response), call.results_path, None)
    if not isinstance(records, list) or len(records) != len(ops) or not all(isinstance(r, dict) for r in records):
        raise MalformedPage(
            f"{connector.name}.{collection}: the batch answer has no list of {len(ops)} records at "
            f"{call.results_path!r}",
            connector=connector.name,
        )
    ordered: list[dict[str, Any]] = records
    if call.match_path is not None:
        by_key = {str(lookup(r, call.match_path, "")): r for r in records}
        if set(by_key) != {op.idempotency_key for op in ops}:
            raise MalformedPage(
                f"{connector.name}.{collection}: the batch answer's {call.match_path} do not match the ops",
                connector=connector.name,
            )
        ordered = [by_key[op.idempotency_key] for op in ops]
    return [
        WriteResult(
            str(lookup(record, call.id_path, op.external_id or "")),
            None,
            connector.updated_at(collection, record),
            None,
            left_out,
            record,
        )
        for op, record, left_out in zip(ops, ordered, dropped, strict=True)
    ]
