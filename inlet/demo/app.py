"""The demo "your app": a small Starlette service that receives inlet deliveries and stores them in SQLite.

It implements the receiving side of the delivery contract (DESIGN.md, "Delivery contract"): it verifies
the Standard Webhooks signature on the raw body, drops events whose idempotency key it has already
applied, and upserts or tombstones records, one transaction per batch. Tests and benchmarks drive it;
`python -m inlet.demo_app --secret whsec_...` runs it for a person to watch at http://127.0.0.1:8400/.

    POST {path}          signed batch  -> 200 {"accepted": n, "duplicates": d} | 400 | 401
    GET  /               HTML overview
    GET  /records        ?tenant=&connection=&data_source=&include_deleted=0|1 -> JSON list
    GET  /stats          JSON counters
    GET  /health         {"ok": true}
    POST /_demo/faults   fault injection (inlet.demo_faults): 503s at a rate, 429 storms, delays, 422s, 413s
    POST /_demo/reset    clear all data, counters and faults
    POST /oauth/token    OAuth2 client credentials, when started with --oauth-client id:secret
    GET  /inlet/schemas/{data_source}, POST|GET /_demo/schemas: the app schema, see inlet.demo_schemas
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import pathlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, Self

import orjson
import uvicorn
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from inlet.delivery import verify
from inlet.demo.faults import FaultConfig, Faults, OAuthServer
from inlet.demo.schemas import SchemaEndpoints
from inlet.errors import SignatureError

__all__ = ["Batch", "DemoStore", "Event", "FaultConfig", "create_demo_app", "main"]

logger = logging.getLogger(__name__)

_SECRET_ENV = "INLET_DEMO_APP_SECRET"
_COUNTERS = ("events_applied", "duplicates", "batches", "rejected_signatures", "requests", "faults")
_KEY_CHUNK = 500  # stays far below SQLite's limit on bound parameters per statement
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    tenant TEXT NOT NULL, connection TEXT NOT NULL, data_source TEXT NOT NULL, external_id TEXT NOT NULL,
    record TEXT, deleted INTEGER NOT NULL, event_type TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    source_updated_at TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, connection, data_source, external_id));
CREATE TABLE IF NOT EXISTS applied_keys (idempotency_key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, connection, data_source, external_id) DO UPDATE SET
    record = excluded.record, deleted = excluded.deleted, event_type = excluded.event_type,
    idempotency_key = excluded.idempotency_key, source_updated_at = excluded.source_updated_at,
    updated_at = excluded.updated_at
"""
_COUNT_RECORDS = "SELECT TOTAL(deleted = 0), TOTAL(deleted) FROM records"
_BUMP = "INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"


class Event(BaseModel):
    """One change event as inlet delivers it; `record` is null only for `deleted`."""

    event_id: str
    type: Literal["created", "updated", "deleted"]
    external_id: str
    record: dict[str, Any] | None = None
    source_updated_at: str | None = None
    idempotency_key: str = Field(min_length=1)

    @model_validator(mode="after")
    def _record_matches_type(self) -> Self:
        if self.type != "deleted" and self.record is None:
            raise ValueError(f"a {self.type} event needs a record object")
        return self


class Batch(BaseModel):
    """The JSON body of one delivery."""

    tenant: str
    connection: str
    data_source: str
    events: list[Event]


class DemoStore:
    """The demo app's SQLite database (WAL mode): records, applied idempotency keys and counters."""

    def __init__(self, db_path: pathlib.Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA cache_size=-65536")  # 64 MB: idempotency keys are random, so are their pages
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def apply(self, batch: Batch) -> tuple[int, int]:
        """Apply the batch's new events in order, and count its request, in one transaction; return (accepted,
        duplicates)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        scope = (batch.tenant, batch.connection, batch.data_source)
        with self._transaction():
            seen = self._applied_keys([event.idempotency_key for event in batch.events])
            rows: list[tuple[Any, ...]] = []
            keys: list[tuple[str]] = []
            for event in batch.events:
                if event.idempotency_key not in seen:
                    seen.add(event.idempotency_key)
                    rows.append((*scope, *_record_columns(event), now))
                    keys.append((event.idempotency_key,))
            self._conn.executemany(_UPSERT, rows)
            self._conn.executemany("INSERT INTO applied_keys VALUES (?)", keys)
            duplicates = len(batch.events) - len(rows)
            self._bump(events_applied=len(rows), duplicates=duplicates, batches=1, requests=1)
        return len(rows), duplicates

    def count(self, **deltas: int) -> None:
        with self._transaction():
            self._bump(**deltas)

    def stats(self) -> dict[str, int]:
        with self._lock:
            live, deleted = self._conn.execute(_COUNT_RECORDS).fetchone()
            counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        return {"records": int(live), "deleted": int(deleted)} | {n: counters.get(n, 0) for n in _COUNTERS}

    def records(self, filters: dict[str, str], include_deleted: bool) -> list[dict[str, Any]]:
        """Records matching the given tenant / connection / data_source values."""
        where = [f"{column} = ?" for column in filters] + ([] if include_deleted else ["deleted = 0"])
        sql = "SELECT tenant, connection, data_source, external_id, record, deleted FROM records"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY rowid", list(filters.values())).fetchall()
        keys = ("tenant", "connection", "data_source", "external_id")
        return [_record_dict(keys, row) for row in rows]

    def totals(self) -> list[tuple[str, str, str, int, int]]:
        """(tenant, connection, data_source, live, deleted) per data source."""
        sql = """SELECT tenant, connection, data_source, TOTAL(deleted = 0), TOTAL(deleted) FROM records
                 GROUP BY tenant, connection, data_source ORDER BY tenant, connection, data_source"""
        with self._lock:
            return [(t, c, d, int(live), int(dead)) for t, c, d, live, dead in self._conn.execute(sql)]

    def latest(self, limit: int = 50) -> list[tuple[str, ...]]:
        """(tenant, connection, external_id, record JSON, event type, updated time), newest first."""
        sql = """SELECT tenant, connection, external_id, COALESCE(record, 'null'), event_type, updated_at
                 FROM records ORDER BY updated_at DESC, rowid DESC LIMIT ?"""
        with self._lock:
            return self._conn.execute(sql, (limit,)).fetchall()

    def reset(self) -> None:
        with self._transaction():
            for table in ("records", "applied_keys", "counters"):
                self._conn.execute(f"DELETE FROM {table}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _applied_keys(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[start : start + _KEY_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT idempotency_key FROM applied_keys WHERE idempotency_key IN ({marks})"
            found.update(key for (key,) in self._conn.execute(sql, chunk))
        return found

    def _bump(self, **deltas: int) -> None:
        self._conn.executemany(_BUMP, [(name, delta) for name, delta in deltas.items() if delta])


class _DemoApp:
    """The endpoints, sharing one store, the signing secrets and the pending faults."""

    def __init__(self, store: DemoStore, secrets: Sequence[str], oauth: OAuthServer) -> None:
        self.store, self.secrets, self.oauth = store, list(secrets), oauth
        self.faults = Faults()
        self.in_flight = self.max_in_flight = 0

    async def receive(self, request: Request) -> Response:
        """A delivery; its request is counted with the batch (one transaction), or alone when none is applied."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        applied = False
        try:
            response, applied = await self._receive(request)
        finally:
            self.in_flight -= 1
            if not applied:
                self.store.count(requests=1)
        return response

    async def _receive(self, request: Request) -> tuple[Response, bool]:
        """The answer, and whether a batch was applied (which counted the request)."""
        response = await self._refusal(request)
        if isinstance(response, Response):
            return response, False
        accepted, duplicates = self.store.apply(response)
        logger.debug("applied %d events, %d duplicates, for %s", accepted, duplicates, response.connection)
        return JSONResponse({"accepted": accepted, "duplicates": duplicates}), True

    async def _refusal(self, request: Request) -> Response | Batch:
        """A fault's or a check's answer, or the batch to apply."""
        if (fault := await self.faults.before()) is not None:
            self.store.count(faults=1)
            return fault
        if not self.oauth.allows(request.headers.get("authorization")):
            return _error(401, "missing or unknown bearer token; get one at /oauth/token")
        body = await request.body()
        try:
            verify(self.secrets, request.headers, body)
        except SignatureError as exc:
            self.store.count(rejected_signatures=1)
            logger.warning("rejected a delivery: %s", exc)
            return _error(401, f"signature verification failed: {exc}")
        try:
            batch = Batch.model_validate_json(body)
        except ValidationError as exc:
            return _error(400, _describe(exc))
        if (refusal := self.faults.refuse(batch.events)) is not None:
            return refusal
        return batch

    async def page(self, request: Request) -> Response:
        return HTMLResponse(_render_page(self.store))

    async def records(self, request: Request) -> Response:
        params = request.query_params
        filters = {key: params[key] for key in ("tenant", "connection", "data_source") if params.get(key)}
        include_deleted = params.get("include_deleted", "0") in ("1", "true")
        return JSONResponse(self.store.records(filters, include_deleted))

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.store.stats() | {"max_in_flight": self.max_in_flight})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def set_faults(self, request: Request) -> Response:
        try:
            config = FaultConfig.model_validate_json(await request.body())
        except ValidationError as exc:
            return _error(400, _describe(exc))
        if config.revoke_tokens:
            self.oauth.tokens.clear()
        self.faults.set(config)
        return JSONResponse(config.model_dump())

    async def reset(self, request: Request) -> Response:
        self.store.reset()
        self.faults.set(FaultConfig())
        self.max_in_flight = 0
        return JSONResponse({"ok": True})


def create_demo_app(
    db_path: pathlib.Path,
    secrets: Sequence[str],
    path: str = "/inlet/events",
    oauth_clients: Mapping[str, str] | None = None,
) -> Starlette:
    """Build the demo app over the SQLite file at `db_path`, accepting deliveries signed by any secret."""
    if not secrets:
        raise ValueError("the demo app needs at least one whsec_ signing secret")
    store = DemoStore(db_path)
    app = _DemoApp(store, secrets, OAuthServer(oauth_clients or {}))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    routes = [
        Route(path, app.receive, methods=["POST"]),
        Route("/", app.page, methods=["GET"]),
        Route("/records", app.records, methods=["GET"]),
        Route("/stats", app.stats, methods=["GET"]),
        Route("/health", app.health, methods=["GET"]),
        Route("/_demo/faults", app.set_faults, methods=["POST"]),
        Route("/_demo/reset", app.reset, methods=["POST"]),
        Route("/oauth/token", app.oauth.token, methods=["POST"]),
        *SchemaEndpoints(secrets).routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _record_columns(event: Event) -> tuple[Any, ...]:
    """(external_id, record, deleted, event_type, idempotency_key, source_updated_at) for the upsert."""
    deleted = event.type == "deleted"
    record = None if deleted else orjson.dumps(event.record).decode()
    key, updated = event.idempotency_key, event.source_updated_at
    return (event.external_id, record, int(deleted), event.type, key, updated)


def _record_dict(keys: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    record = None if row[4] is None else orjson.loads(row[4])
    return dict(zip(keys, row[:4], strict=True)) | {"record": record, "deleted": bool(row[5])}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def _describe(exc: ValidationError) -> str:
    """The first validation problem as `location: message`, without echoing the input."""
    first = exc.errors(include_input=False, include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    more = exc.error_count() - 1
    return f"malformed batch: {location}: {first['msg']}" + (f" (and {more} more problems)" if more else "")


def _render_page(store: DemoStore) -> str:
    stats = store.stats()
    summary = " · ".join(f"{_esc(name.replace('_', ' '))}: {value}" for name, value in stats.items())
    totals = _table(("tenant", "connection", "data source", "live", "deleted"), store.totals())
    latest = _table(("tenant", "connection", "external id", "record", "type", "updated"), store.latest(50))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>inlet demo app</title>'
        '<meta http-equiv="refresh" content="5"><style>body{font-family:sans-serif;margin:2em}'
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "td:nth-child(4){font-family:monospace}</style></head><body><h1>inlet demo app</h1>"
        f"<p>{summary}</p><h2>Totals per data source</h2>{totals}<h2>Latest 50 records</h2>{latest}"
        "</body></html>"
    )


def _table(headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(heading)}</th>" for heading in headings)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td colspan=9>nothing yet</td></tr>'}</table>"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the demo app with uvicorn: `python -m inlet.demo_app --secret whsec_...`."""
    parser = argparse.ArgumentParser(prog="python -m inlet.demo_app", description="Run the inlet demo app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument("--db", type=pathlib.Path, default=pathlib.Path(".inlet/demo-app.db"))
    parser.add_argument("--path", default="/inlet/events", help="where deliveries are POSTed")
    secret_help = f"whsec_ signing secret, repeatable; default ${_SECRET_ENV} (space separated)"
    parser.add_argument("--secret", action="append", help=secret_help)
    parser.add_argument("--oauth-client", action="append", default=[], help="id:secret; event POSTs need a token")
    args = parser.parse_args(argv)
    secrets = args.secret or [s for s in os.environ.get(_SECRET_ENV, "").split() if s]
    if not secrets:
        parser.error(f"give --secret whsec_... or set {_SECRET_ENV}")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("demo app on http://%s:%d/ receiving at %s, db %s", args.host, args.port, args.path, args.db)
    clients = dict(pair.partition(":")[::2] for pair in args.oauth_client)
    app = create_demo_app(args.db, secrets, args.path, clients)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
