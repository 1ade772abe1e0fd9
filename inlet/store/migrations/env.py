"""Alembic environment: runs on the connection that inlet.store.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import inlet.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    from inlet.settings import get_settings
    from inlet.store.engine import create_store_engine

    connection = create_store_engine(get_settings().store_url).connect()

context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
