"""App schemas per tenant: a static file, or fetched from the team's app and cached in the store with a TTL.

Fetching is `GET {destination}{path}?tenant=<tenant>` (path default `/inlet/schemas/{data_source}`), signed
like a delivery (Standard Webhooks headers) where the signed bytes are the request target, `path?query`,
so a captured request cannot be replayed for another tenant. The app answers a JSON Schema object. A
failed fetch falls back to the cached copy (however old), and fails only when there is none.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from time import time

import httpx
import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from inlet.delivery import sign_headers
from inlet.errors import ConfigError
from inlet.settings import Settings
from inlet.store import AppSchemaCache, utcnow
from mappings import AppSchema, read_schema

__all__ = ["fetch_schema", "schema_for"]

logger = logging.getLogger(__name__)


def schema_for(
    engine: Engine, settings: Settings, tenant: str, data_source: str, *, refresh: bool = False
) -> AppSchema | None:
    """The tenant's app schema for a data source; None when none is configured (records are not checked)."""
    if settings.app_schema.source == "static":
        path = (settings.app_schema.folder or settings.home / "schemas") / f"{data_source}.yaml"
        return read_schema(path) if path.is_file() else None
    with Session(engine) as session:
        cached = session.get(AppSchemaCache, (tenant, data_source))
        if cached is not None:
            session.expunge(cached)
    fresh = cached is not None and _aware(cached) + timedelta(seconds=settings.app_schema.ttl_seconds) > utcnow()
    if cached is not None and fresh and not refresh:
        return _parse(cached)
    try:
        return fetch_schema(engine, settings, tenant, data_source)
    except ConfigError:
        if cached is None:
            raise
        logger.warning("using the cached app schema of %s/%s: the fetch failed", tenant, data_source)
        return _parse(cached)


def fetch_schema(engine: Engine, settings: Settings, tenant: str, data_source: str) -> AppSchema:
    """Fetch the schema from the team's app now and cache it; ConfigError saying why when the app does not give it."""
    secret = settings.destination_secret()
    if secret is None:
        raise ConfigError("no signing secret for the destination: set INLET_DESTINATION__SECRET or run `inlet init`")
    request = httpx.Request(
        "GET",
        settings.destination_url + settings.app_schema.path.format(data_source=data_source),
        params={"tenant": tenant},
    )
    target = request.url.raw_path
    request.headers.update(
        sign_headers([secret.get_secret_value()], msg_id=f"msg_{uuid.uuid4().hex}", timestamp=int(time()), body=target)
    )
    url = str(request.url.copy_with(query=None))
    try:
        with httpx.Client(timeout=settings.destination.timeout_seconds) as client:
            response = client.send(request)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"cannot fetch the app schema of tenant {tenant!r} from {url}: {type(exc).__name__}"
        ) from None
    if response.status_code != 200:
        raise ConfigError(f"the app answered {response.status_code} for the schema of tenant {tenant!r} at {url}")
    try:
        document = response.json()
    except ValueError:
        raise ConfigError(f"the app's schema for tenant {tenant!r} at {url} is not JSON") from None
    schema = AppSchema(document, origin=f"app schema of {tenant}/{data_source} from {url}")
    with Session(engine) as session:
        row = session.get(AppSchemaCache, (tenant, data_source)) or AppSchemaCache(
            tenant_id=tenant, data_source=data_source, document="", source=url
        )
        row.document, row.source, row.fetched_at = orjson.dumps(document).decode(), url, utcnow()
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # another run cached it at the same moment; its copy is as fresh
            session.rollback()
    return schema


def _parse(cached: AppSchemaCache) -> AppSchema:
    return AppSchema(
        orjson.loads(cached.document),
        origin=f"app schema of {cached.tenant_id}/{cached.data_source} from {cached.source}",
    )


def _aware(cached: AppSchemaCache) -> datetime:
    """SQLite gives naive datetimes back; the store writes UTC."""
    when = cached.fetched_at
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
