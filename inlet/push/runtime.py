"""What a push drain works with: the connection's connector (writes), its reverse mapper, the retry and
breaker policy of deliveries, and the helpers that read the external record's current state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import Connector
from connectors.budget import RequestBudget
from connectors.paths import lookup
from connectors.registry import load, open_connector
from inlet.delivery import breaker
from inlet.mapping import mapping_for, stored_layers
from inlet.oauth import oauth_auth
from inlet.push.reverse import ReverseMapper, build_reverse, reverse_layers_name
from inlet.settings import DeliveryPolicy, Settings
from inlet.store import LoadedConnection, Store, Vault, load_connection, shared_store

__all__ = ["PushRuntime", "open_push_runtime", "reverse_mapper"]

# Where a read record shows the etag its app's writes take, when the writes spec does not say: Google's `etag`,
# Graph's `@odata.etag`, Kinto's `last_modified` (its ETag header is that timestamp, quoted).
_ETAG_PATHS = ("etag", "@odata.etag", "last_modified")


@dataclass
class PushRuntime:
    """Resources of one push drain for one connection and data source."""

    settings: Settings
    engine: Store
    loaded: LoadedConnection
    data_source: str
    connector: Connector
    collection: str
    reverse: ReverseMapper
    policy: DeliveryPolicy

    @property
    def connection_id(self) -> str:
        return self.loaded.connection.id

    @property
    def app(self) -> str:
        return self.loaded.connection.app

    @property
    def breaker_key(self) -> str:
        """The breaker of writes to this connection's app account (never a URL or a secret)."""
        return f"push:{self.connection_id}"

    @property
    def breaker_policy(self) -> breaker.BreakerPolicy:
        p = self.policy
        return breaker.BreakerPolicy(p.breaker_threshold, p.breaker_cooldown_seconds, p.retry_cap_seconds)

    @property
    def can_read(self) -> bool:
        return self.connector.collection(self.collection).get is not None

    async def current(self, external_id: str) -> dict[str, Any] | None:
        """The external record as it is now, when the connector can read one; None when it is gone (or unread)."""
        if not self.can_read:
            return None
        return await self.connector.get(self.collection, external_id)

    def etag(self, raw: Mapping[str, Any]) -> str | None:
        """The record's etag as the app's writes take it back (None: the app has no concurrency control)."""
        writes = self.connector.collection(self.collection).writes
        if writes is None or writes.etag is None:
            return None
        paths = (writes.etag.response_path,) if writes.etag.response_path else _ETAG_PATHS
        for path in paths:
            value = lookup(raw, path, None) if path else None
            if isinstance(value, str | int) and value != "":
                return str(value)
        return None

    def redact(self, text: str) -> str:
        return self.connector.redact(text)

    async def aclose(self) -> None:
        await self.connector.aclose()


def reverse_mapper(engine: Store, settings: Settings, loaded: LoadedConnection, data_source: str) -> ReverseMapper:
    """The connection's reverse mapper: its three layers, then the connector's write fields."""
    connection = loaded.connection
    spec, _ = load(connection.app)
    collection = connection.collection or spec.collection_for(data_source)
    collection_spec = spec.collections[collection]
    writable = frozenset(collection_spec.writes.fields) if collection_spec.writes else frozenset()
    forward = mapping_for(engine, settings, connection, data_source)
    return build_reverse(
        data_source,
        connection.app,
        collection_spec.fields_for(data_source),
        writable=writable,
        paths=collection_spec.writes.paths if collection_spec.writes else None,
        app_fields=frozenset(forward.templates),
        tenant=connection.tenant_id,
        connection=connection.id,
        overrides_dir=settings.mapping_overrides,
        stored=stored_layers(engine, connection.tenant_id, connection.id, reverse_layers_name(data_source)),
    )


def open_push_runtime(
    settings: Settings, tenant: str, connection: str, data_source: str | None = None, *, engine: Store | None = None
) -> PushRuntime:
    """Load the connection, its connector and reverse mapping; fails before anything is written."""
    engine = engine or shared_store(settings.store_url)
    vault = Vault.from_settings(settings)
    loaded = load_connection(engine, vault, tenant, connection)
    data_source = data_source or loaded.connection.data_source
    auth = oauth_auth(engine, vault, settings, loaded)
    app = loaded.connection.app
    spec, _ = load(app)
    collection = loaded.connection.collection or spec.collection_for(data_source)
    budget = settings.source_budget
    connector = open_connector(
        app,
        parameters=loaded.connection.parameters,
        credentials=loaded.credentials,
        retry=settings.source_retry,
        budget=RequestBudget(budget.requests, budget.per_seconds) if budget else None,
        auth=auth,
        egress=settings.egress.policy(),
    )
    return PushRuntime(
        settings=settings,
        engine=engine,
        loaded=loaded,
        data_source=data_source,
        connector=connector,
        collection=collection,
        reverse=reverse_mapper(engine, settings, loaded, data_source),
        policy=settings.destination,
    )
