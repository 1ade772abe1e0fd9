"""Tenants and connections: add them, and load one connection with its decrypted credentials.

A connection is always looked up *through* its tenant, so one tenant's name can never reach
another tenant's credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, select

from connectors.egress import EgressPolicy
from connectors.errors import InvalidParameter
from connectors.parameters import check_values
from connectors.registry import available, load
from connectors.spec import RESERVED_PARAMETERS
from inlet.errors import ConfigError, Conflict, NotFound
from inlet.settings import get_settings
from inlet.store.tables import Connection, OAuthToken, Tenant
from inlet.store.vault import Vault

__all__ = [
    "LoadedConnection",
    "add_connection",
    "add_tenant",
    "check_connection_input",
    "list_connections",
    "list_tenants",
    "load_connection",
]


@dataclass(frozen=True)
class LoadedConnection:
    tenant: Tenant
    connection: Connection
    credentials: Mapping[str, SecretStr]

    def __repr__(self) -> str:
        return f"LoadedConnection({self.tenant.id!r}, {self.connection.id!r}, credentials=***)"


def add_tenant(engine: Engine, tenant_id: str, name: str | None = None) -> Tenant:
    with Session(engine) as session:
        if session.get(Tenant, tenant_id) is not None:
            raise Conflict(f"tenant {tenant_id!r} already exists")
        try:
            tenant = Tenant.model_validate({"id": tenant_id, "name": name or tenant_id})
        except ValidationError:
            raise ConfigError(
                f"tenant id {tenant_id!r} must start with a lowercase letter or digit and hold only a-z, 0-9, - and _"
            ) from None
        session.add(tenant)
        session.commit()
        session.refresh(tenant)
        return tenant


def add_connection(
    engine: Engine,
    vault: Vault,
    *,
    tenant_id: str,
    connection_id: str,
    app: str,
    parameters: Mapping[str, str],
    credentials: Mapping[str, SecretStr],
    data_source: str = "users",
    replace: bool = False,
    egress: EgressPolicy | None = None,
) -> Connection:
    """Store a connection; its parameters are checked against the connector's rules (URL hosts beyond the
    declared ones only as `egress`, default the settings', allows), its credentials encrypted."""
    parameters = check_connection_input(app, parameters, data_source, egress)
    with Session(engine) as session:
        if session.get(Tenant, tenant_id) is None:
            raise NotFound(f"no tenant {tenant_id!r}; add it first with `inlet tenants add {tenant_id}`")
        existing = session.get(Connection, connection_id)
        if existing is not None and (not replace or existing.tenant_id != tenant_id):
            raise Conflict(f"connection {connection_id!r} already exists")
        connection = existing or Connection(id=connection_id, tenant_id=tenant_id, app=app)
        connection.app = app
        connection.data_source = data_source
        connection.parameters = dict(parameters)
        connection.credentials_encrypted = vault.encrypt(credentials)
        if existing is not None and (token := session.get(OAuthToken, connection_id)) is not None:
            session.delete(token)  # new credentials replace the old sign-in; stale tokens would override them
        session.add(connection)
        session.commit()
        session.refresh(connection)
        return connection


def check_connection_input(
    app: str, parameters: Mapping[str, str], data_source: str = "users", egress: EgressPolicy | None = None
) -> dict[str, str]:
    """The connector exists, the parameters are its own, complete and valid by its rules, and it provides the
    data source; the checked parameters."""
    if app not in available():
        raise ConfigError(f"no connector {app!r}; available: {', '.join(available())}")
    spec, _ = load(app)
    unknown = sorted(set(parameters) - set(spec.parameters) - RESERVED_PARAMETERS)
    if unknown:
        raise ConfigError(f"{app} has no parameters {unknown}; it takes {sorted(spec.parameters)}")
    missing = sorted(n for n, p in spec.parameters.items() if p.default is None and n not in parameters)
    if missing:
        raise ConfigError(f"{app} needs --param for {missing}")
    try:
        parameters = check_values(spec.parameters, parameters, egress or get_settings().egress.policy(), connector=app)
    except InvalidParameter as exc:
        raise ConfigError(str(exc)) from None
    try:
        spec.collection_for(data_source)
    except KeyError:
        raise ConfigError(f"{app} has no collection for the data source {data_source!r}") from None
    return dict(parameters)


def load_connection(engine: Engine, vault: Vault, tenant_id: str, connection_id: str) -> LoadedConnection:
    """One tenant's connection with its credentials; NotFound names what is missing."""
    with Session(engine) as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}; `inlet tenants list` shows the tenants")
        connection = session.exec(
            select(Connection).where(Connection.id == connection_id, Connection.tenant_id == tenant_id)
        ).first()
        if connection is None:
            raise NotFound(
                f"tenant {tenant_id!r} has no connection {connection_id!r}; "
                f"`inlet connections list --tenant {tenant_id}` shows its connections"
            )
        session.expunge(connection)
        session.expunge(tenant)
    return LoadedConnection(tenant, connection, vault.decrypt(connection.credentials_encrypted))


def list_tenants(engine: Engine) -> list[Tenant]:
    with Session(engine) as session:
        return list(session.exec(select(Tenant).order_by(Tenant.id)))


def list_connections(engine: Engine, tenant_id: str | None = None) -> list[Connection]:
    with Session(engine) as session:
        query = select(Connection).order_by(Connection.tenant_id, Connection.id)
        if tenant_id:
            query = query.where(Connection.tenant_id == tenant_id)
        return list(session.exec(query))
