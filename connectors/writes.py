"""Writes to an external app: create, update and delete one record as its collection's `writes:` declares.

    result = await write(connector, WriteOp("create", "contacts", None, {"email": "a@b.org"}, "push-81"))
    result.external_id, result.etag, result.dropped

A write is retried in process like a read (429 with Retry-After through the connection's budget, 5xx,
timeouts), with one difference: a create that may have reached the app (a timeout, a 5xx) is not sent
again blindly. With an idempotency header the app recognises the repeat; without one, `find_existing`
looks for the record the lost create may have made, and the retry happens only when there is none; an
app with neither gets the transient error back, for the caller to decide.

Fields the app cannot write are left out and listed in `WriteResult.dropped`, never silently.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from connectors.base import Connector
from connectors.budget import full_jitter
from connectors.errors import ConnectorError, FatalError, RequestRejected, RetryableError, WriteConflict, WriteRejected
from connectors.paths import MISSING, lookup
from connectors.redaction import redact_start
from connectors.spec import placeholders
from connectors.webhooks import WebhookEvent
from connectors.write_spec import EtagSpec, FindSpec, WriteCall, WritesSpec

__all__ = [
    "ANSWERED",
    "Context",
    "can_find",
    "WriteKind",
    "WriteOp",
    "WriteResult",
    "event_by_inlet",
    "find_existing",
    "check_id",
    "json_or_none",
    "kept_fields",
    "modified_by_inlet",
    "refusal",
    "render",
    "write",
    "writes_of",
]

logger = logging.getLogger(__name__)

WriteKind = Literal["create", "update", "delete"]
ANSWERED = frozenset({300, 400, 404, 405, 409, 410, 412, 415, 422}) | frozenset(range(200, 300))
_MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class WriteOp:
    """One record write: `external_id` is None for a create; `fields` use the app's field names."""

    kind: WriteKind
    data_source: str
    external_id: str | None
    fields: Mapping[str, object]
    idempotency_key: str
    etag: str | None = None


@dataclass(frozen=True)
class WriteResult:
    """What the app answered: the record's id, its new etag and modification time where the app gives them,
    whether the app marks the change as inlet's own (None: it has no marker, or did not say), the fields
    left out because the app cannot write them, and the written record as the app returned it."""

    external_id: str
    etag: str | None
    modified_at: str | None
    modified_by_inlet: bool | None
    dropped: tuple[str, ...] = ()
    record: Mapping[str, Any] | None = field(default=None, repr=False)
    found_existing: bool = False  # a create that found the record a lost earlier create had made
    sent: bool = True  # False: nothing writable was left, so nothing went to the app


def writes_of(connector: Connector, data_source: str) -> tuple[str, WritesSpec]:
    """The collection behind `data_source` (a collection or UDM name) and its `writes:`; FatalError if none."""
    name = data_source if data_source in connector.spec.collections else None
    if name is None:
        try:
            name = connector.spec.collection_for(data_source)
        except KeyError:
            name = data_source  # connector.collection raises the clear error
    spec = connector.collection(name).writes
    if spec is None:
        raise FatalError(
            f"{connector.name}.{name} declares no `writes:`; it cannot be written", connector=connector.name
        )
    return name, spec


async def write(connector: Connector, op: WriteOp) -> WriteResult:
    """Create, update or delete one record in the app; errors: WriteRejected, WriteConflict, RetryableError,
    AuthError and the rest of the connector error tree."""
    collection, spec = writes_of(connector, op.data_source)
    call = getattr(spec, op.kind)
    if call is None:
        raise FatalError(f"{connector.name}.{collection} cannot {op.kind} records", connector=connector.name)
    kept, dropped = kept_fields(spec, op)
    if dropped:
        logger.warning("%s.%s: %s cannot write %s; left out", connector.name, collection, op.kind, list(dropped))
    if op.kind != "create":
        check_id(connector, collection, op.external_id)
    if op.kind == "update" and not kept:
        return WriteResult(op.external_id or "", op.etag, None, None, dropped, sent=False)
    if call.etag_required and op.etag is None:
        raise WriteRejected(
            f"{connector.name}.{collection}: {op.kind} needs the record's etag (read it first)",
            connector=connector.name,
        )
    request = _request(connector, spec, call, op, kept)
    response = await _send(connector, spec, collection, op, kept, request)
    if isinstance(response, WriteResult):
        return WriteResult(**{**response.__dict__, "dropped": dropped})
    try:
        return _result(connector, collection, spec, call, op, response, dropped)
    except WriteConflict as conflict:
        if op.kind == "create" and conflict.existing_id and request.extensions.get("inlet_resent"):
            # the lost first try made it, and a unique key (HubSpot's email) refused the second: it is ours
            return WriteResult(conflict.existing_id, None, None, None, dropped, found_existing=True)
        raise


def kept_fields(spec: WritesSpec, op: WriteOp) -> tuple[dict[str, object], tuple[str, ...]]:
    """The fields of `op` the app can write, and the names of those it cannot (a delete writes none)."""
    if op.kind == "delete":
        return {}, ()
    kept = {k: v for k, v in op.fields.items() if k in spec.fields}
    return kept, tuple(sorted(set(op.fields) - set(kept)))


async def find_existing(
    connector: Connector, data_source: str, fields: Mapping[str, object], *, lost_create: bool = True
) -> str | None:
    """The id of the record a create of `fields` would duplicate (by the `find:` lookup), or None. None too
    when the app declares no lookup, or `fields` lack what it looks up by. Several matches: WriteConflict.
    A `scan` (the whole listing) runs only for a `lost_create`: an earlier try may have made the record."""
    collection, spec = writes_of(connector, data_source)
    if spec.find is None:
        return None
    if not can_find(spec.find, fields):
        return None  # the fields lack what the app looks records up by
    if spec.find.scan:
        return await _scan(connector, collection, spec.find, fields) if lost_create else None
    wanted = _field_tokens([spec.find.params, spec.find.body]) + spec.find.match
    values = _find_params(spec.find, fields)
    if values is None:
        return None
    listing = connector.collection(collection).list
    path = spec.find.path or listing.path
    params = {k: v.format_map(_Params(connector)) for k, v in listing.params.items()} if spec.find.path is None else {}
    request = connector.write_request(
        spec.find.method,
        path,
        path_values={},
        params={**params, **values},
        headers={},
        json=render(spec.find.body, Context(fields, None, None)) if spec.find.body is not None else None,
    )
    response = await connector.send(request)
    records_path = spec.find.records_path if spec.find.records_path is not None else listing.records_path
    _, records = connector.parse_page(response, records_path, connector.redact(str(request.url)))
    ids = [connector.record_id(collection, r) for r in records if _matches(r, fields, wanted)]
    return _the_one(connector, collection, ids, sorted(values))


def can_find(find: FindSpec | None, fields: Mapping[str, object]) -> bool:
    """Whether a record of `fields` can be looked up: the app has a `find:`, and the fields hold every value it
    looks up by (else a lost create cannot be told from none, and is not sent again)."""
    if find is None:
        return False
    names = find.match if find.scan else _field_tokens([find.params, find.body]) + find.match
    return bool(names) and all(lookup(fields, name, None) not in (None, "") for name in names)


async def _scan(connector: Connector, collection: str, find: FindSpec, fields: Mapping[str, object]) -> str | None:
    """The one listed record holding every `match` field as written."""
    ids: list[str] = []
    async for page in connector.pages(collection):
        ids += [connector.record_id(collection, r) for r in page.records if _holds(r, fields, find.match)]
    return _the_one(connector, collection, ids, find.match)


def _the_one(connector: Connector, collection: str, ids: list[str], by: list[str]) -> str | None:
    """The one id found (None: none); several: WriteConflict, since which one a lost create made is unknown."""
    if len(ids) > 1:
        raise WriteConflict(
            f"{connector.name}.{collection}: {len(ids)} records match {by}; which one a lost create made is ambiguous",
            connector=connector.name,
            existing_id=ids[0],
        )
    return ids[0] if ids else None


def modified_by_inlet(connector: Connector, data_source: str, record: Mapping[str, Any]) -> bool | None:
    """Whether the app's own "modified by" marker on `record` names this connection (None: no marker)."""
    _, spec = writes_of(connector, data_source)
    if spec.modified_by is None:
        return None
    value = lookup(record, spec.modified_by.path, None)
    names = placeholders(spec.modified_by.equals)
    if value is None or any(connector.parameter(name) is None for name in names):
        return None  # no marker on this record, or the connection does not say who inlet writes as
    return str(value) == spec.modified_by.equals.format_map(_Params(connector))


def event_by_inlet(connector: Connector, event: WebhookEvent) -> bool | None:
    """Whether a webhook's "modified by" marker names the user (or app) this connection writes as, by the
    connection's `write_user` parameter (None: the event carries no marker, or the parameter is unset)."""
    mine = connector.parameter("write_user")
    if event.changed_by is None or mine is None:
        return None
    return event.changed_by == mine


# -- building ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    fields: Mapping[str, object]
    etag: str | None
    external_id: str | None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    key: str | None = None  # the op's idempotency key (`$key`, a batch item's trace id)
    items: list[Any] | None = None  # a batch body's rendered items (`$items`)


class _Params(dict[str, str]):
    """A connection's parameters for `str.format_map`; an unknown one is an error of the spec."""

    def __init__(self, connector: Connector) -> None:
        super().__init__()
        self._connector = connector

    def __missing__(self, key: str) -> str:
        value = self._connector.parameter(key)
        if value is None:
            raise FatalError(f"{self._connector.name}: no connection parameter {key!r}", connector=self._connector.name)
        return value


def render(template: Any, context: Context) -> Any:
    """The template with its `$` tokens replaced (see write_spec); a `$field:x` absent from the fields drops
    its key (or list item)."""
    if isinstance(template, dict):
        rendered = {k: render(v, context) for k, v in template.items()}
        merged = rendered.pop("$merge", {})  # `{$merge: $fields, updatedAt: $now_ms}`: the fields, and more
        return {k: v for k, v in {**merged, **rendered}.items() if v is not MISSING}
    if isinstance(template, list):
        return [v for v in (render(item, context) for item in template) if v is not MISSING]
    if not isinstance(template, str) or not template.startswith("$"):
        return template
    if template.startswith("$field:"):
        return lookup(context.fields, template.removeprefix("$field:"))
    tokens: dict[str, Any] = {
        "$fields": dict(context.fields),
        "$field_names": ",".join(context.fields),
        "$etag": context.etag if context.etag is not None else MISSING,
        "$id": context.external_id if context.external_id is not None else MISSING,
        "$now_ms": int(context.now.timestamp() * 1000),
        "$now_iso": context.now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "$key": context.key if context.key is not None else MISSING,
        "$items": context.items if context.items is not None else MISSING,
    }
    return tokens.get(template, template)


def _request(
    connector: Connector, spec: WritesSpec, call: WriteCall, op: WriteOp, fields: Mapping[str, object]
) -> httpx.Request:
    context = Context(fields, op.etag, op.external_id)
    body = render(call.body, context) if call.body is not None and op.kind != "delete" else None
    headers = dict(call.headers)
    if spec.etag is not None and op.etag is not None and call.send_etag:
        if spec.etag.header is not None:
            headers[spec.etag.header] = _etag_header(spec.etag, op.etag)
        elif spec.etag.body_path is not None and isinstance(body, dict):
            body[spec.etag.body_path] = op.etag
    if spec.idempotency_header is not None and op.kind == "create":
        headers[spec.idempotency_header] = op.idempotency_key
    params: dict[str, str] = {}
    for name, template in call.params.items():
        value = render(template, context)
        if value is not MISSING:
            params[name] = value.format_map(_Params(connector)) if value is template else str(value)
    quoted = {"id": quote(op.external_id, safe=call.id_safe)} if op.external_id is not None else {}
    return connector.write_request(
        call.method, call.path, path_values=quoted, params=params, headers=headers, json=body
    )


def _etag_header(etag: EtagSpec, value: str) -> str:
    if etag.http_date:  # a modified time, sent as an HTTP date (Salesforce's If-Unmodified-Since)
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # an HTTP date already (or not a date: the app says so)
        return email.utils.format_datetime(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC), usegmt=True)
    return f'"{value}"' if etag.quote and not value.startswith('"') else value


def _find_params(find: FindSpec, fields: Mapping[str, object]) -> dict[str, str] | None:
    values: dict[str, str] = {}
    for name, template in find.params.items():
        value = render(template, Context(fields, None, None))
        if value is MISSING or value is None or isinstance(value, dict | list):
            return None
        values[name] = str(value)
    return values


def _field_tokens(template: Any) -> list[str]:
    """The field names of the `$field:<name>` tokens in a template."""
    if isinstance(template, dict):
        return [name for value in template.values() for name in _field_tokens(value)]
    if isinstance(template, list):
        return [name for value in template for name in _field_tokens(value)]
    if isinstance(template, str) and template.startswith("$field:"):
        return [template.removeprefix("$field:")]
    return []


def _matches(record: Mapping[str, Any], fields: Mapping[str, object], names: list[str]) -> bool:
    """An app whose filter is loose (a prefix, a case-folded match) may list more; keep exact matches only
    where the record shows the field under the same name."""
    for name in names:
        shown = lookup(record, name, MISSING)
        if shown is not MISSING and str(shown).lower() != str(lookup(fields, name)).lower():
            return False
    return True


def _holds(record: Mapping[str, Any], fields: Mapping[str, object], names: list[str]) -> bool:
    """The record shows every one of `names` with the written value (case-folded, as apps compare emails)."""
    for name in names:
        shown = lookup(record, name, MISSING)
        if shown is MISSING or str(shown).lower() != str(lookup(fields, name)).lower():
            return False
    return True


def check_id(connector: Connector, collection: str, external_id: str | None) -> None:
    pattern = connector.collection(collection).id_pattern
    if external_id is None or not re.fullmatch(pattern, external_id):
        shown = "none" if external_id is None else repr(external_id[:80])
        raise RequestRejected(
            f"{connector.name}.{collection}: {shown} is not an id of this app (pattern {pattern})",
            connector=connector.name,
        )


# -- sending -----------------------------------------------------------------------------------------


async def _send(
    connector: Connector,
    spec: WritesSpec,
    collection: str,
    op: WriteOp,
    fields: Mapping[str, object],
    request: httpx.Request,
) -> httpx.Response | WriteResult:
    """Send with retries; a create that may have landed is looked up (or given up) rather than repeated."""
    policy = connector.retry_policy
    blind = op.kind == "create" and spec.idempotency_header is None
    for attempt in range(1, policy.attempts + 1):
        answer = await connector.attempt(request, ANSWERED)
        if isinstance(answer, httpx.Response):
            return answer
        if not isinstance(answer, RetryableError) or attempt == policy.attempts:
            raise answer
        if blind and not _never_applied(answer):
            if not can_find(spec.find, fields):
                raise answer
            found = await find_existing(connector, collection, fields)
            if found is not None:
                logger.info("%s.%s: a lost create had made %s", connector.name, collection, found)
                return WriteResult(found, None, None, None, found_existing=True, sent=True)
            request.extensions["inlet_resent"] = True  # not found (yet: a search index may lag)
        wait = answer.retry_after
        if wait is None:
            wait = full_jitter(attempt, policy.backoff_seconds, policy.max_backoff_seconds)
        if wait > policy.max_wait_seconds:
            raise answer
        logger.warning("%s (attempt %d of %d, waiting %.2fs)", answer, attempt, policy.attempts, wait)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _never_applied(error: ConnectorError) -> bool:
    """A 429 is a refusal before any work: the create did not happen."""
    return isinstance(error, RetryableError) and error.status == 429


def _result(
    connector: Connector,
    collection: str,
    spec: WritesSpec,
    call: WriteCall,
    op: WriteOp,
    response: httpx.Response,
    dropped: tuple[str, ...],
) -> WriteResult:
    status = response.status_code
    url = connector.redact(str(response.request.url))
    body = json_or_none(response)
    if op.kind == "delete" and status in spec.delete_ok:
        return WriteResult(op.external_id or "", None, None, None, dropped)
    if not 200 <= status < 300:
        raise refusal(connector, collection, spec, op, response, body, url)
    record = lookup(body, call.record_path, None) if body is not None else None
    record = record if isinstance(record, dict) else None
    external_id = op.external_id
    if op.kind == "create":
        assert call.id_path is not None
        found = lookup(body, call.id_path, None) if body is not None else None
        if found in (None, ""):
            raise RequestRejected(
                f"{connector.name}.{collection}: the create answered {status} without an id at {call.id_path!r}",
                connector=connector.name,
                url=url,
            )
        external_id = str(found)
    etag = None
    if spec.etag is not None:
        if spec.etag.response_header is not None:
            etag = response.headers.get(spec.etag.response_header)
        elif spec.etag.response_path is not None and record is not None:
            value = lookup(record, spec.etag.response_path, None)
            etag = None if value is None else str(value)
        if etag is not None and spec.etag.quote:
            etag = etag.strip('"')
    modified_at = connector.updated_at(collection, record) if record is not None else None
    by_inlet = modified_by_inlet(connector, collection, record) if record is not None else None
    return WriteResult(str(external_id), etag, modified_at, by_inlet, dropped, record)


def refusal(
    connector: Connector,
    collection: str,
    spec: WritesSpec,
    op: WriteOp,
    response: httpx.Response,
    body: Any,
    url: str,
) -> ConnectorError:
    status = response.status_code
    text = redact_start(response.text, [], _MESSAGE_LIMIT)
    where = f"{connector.name}: {op.kind} {collection} ({response.request.method} {url}) answered {status}"
    for rule in spec.conflict:
        if status in rule.status and (rule.body_contains is None or rule.body_contains in response.text):
            existing = None
            if rule.existing_id_pattern and (match := re.search(rule.existing_id_pattern, response.text)):
                existing = match.group(1)
            return WriteConflict(
                f"{where}: the record changed since it was read, or exists already. Body: {connector.redact(text)}",
                connector=connector.name,
                url=url,
                existing_id=existing,
            )
    message = lookup(body, spec.error_message_path, None) if body is not None else None
    app_message = connector.redact(str(message if message is not None else text))[:_MESSAGE_LIMIT]
    return WriteRejected(
        f"{where}: the app refused the write: {app_message}",
        connector=connector.name,
        url=url,
        app_message=app_message,
        status=status,
    )


def json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
