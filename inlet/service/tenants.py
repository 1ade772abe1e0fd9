"""Tenants: the customers of the team's app."""

from __future__ import annotations

from typing import cast

from sqlmodel import Session, col, select

from inlet.errors import NotFound
from inlet.service.installation import Installation
from inlet.service.paging import Page, checked_limit, decode_cursor, page_of
from inlet.store import Tenant, add_tenant

__all__ = ["create_tenant", "get_tenant", "list_tenants", "require_tenant"]


def create_tenant(inst: Installation, tenant_id: str, name: str | None = None) -> Tenant:
    """Add a tenant; Conflict when it exists, ConfigError when the id is malformed."""
    return add_tenant(inst.engine, tenant_id, name)


def get_tenant(inst: Installation, tenant_id: str) -> Tenant:
    with Session(inst.engine) as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}; `inlet tenants list` shows the tenants")
        session.expunge(tenant)
        return tenant


def require_tenant(inst: Installation, tenant_id: str) -> None:
    """NotFound unless the tenant exists."""
    get_tenant(inst, tenant_id)


def list_tenants(inst: Installation, *, cursor: str | None = None, limit: int = 100) -> Page[Tenant]:
    after = cast(str | None, decode_cursor(cursor, str))
    with Session(inst.engine) as session:
        query = select(Tenant).order_by(col(Tenant.id)).limit(checked_limit(limit) + 1)
        if after is not None:
            query = query.where(col(Tenant.id) > after)
        rows = list(session.exec(query))
    return page_of(rows, limit, lambda t: t.id)
