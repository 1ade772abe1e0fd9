"""bi-directional sync: the push outbox, data links, inlet's own writes (for echo suppression), push counters

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "push_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("data_source", sa.String(), nullable=False),
        sa.Column("app_id", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.String(), nullable=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", stamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("dead_at", stamp, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_push_outbox_drain", "push_outbox", ["connection_id", "status", "id"])
    op.create_index("ux_push_outbox_key", "push_outbox", ["connection_id", "idempotency_key"], unique=True)
    op.create_table(
        "data_link",
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("data_source", sa.String(), nullable=False),
        sa.Column("app_id", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("create_key", sa.String(), nullable=True),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("external_modified_at", sa.String(), nullable=True),
        sa.Column("synced_at", stamp, nullable=True),
        sa.Column("deleted_at", stamp, nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "data_source", "app_id"),
    )
    op.create_index("ux_data_link_external", "data_link", ["connection_id", "data_source", "external_id"], unique=True)
    op.create_table(
        "push_echo",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("data_source", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("field_hashes", sa.JSON(), nullable=False),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("modified_at", sa.String(), nullable=True),
        sa.Column("written_at", stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_push_echo_record", "push_echo", ["connection_id", "data_source", "external_id"])
    op.create_index("ix_push_echo_written_at", "push_echo", ["written_at"])
    op.create_table(
        "push_stat",
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("data_source", sa.String(), nullable=False),
        sa.Column("written", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("echo_suppressed", sa.Integer(), nullable=False),
        sa.Column("dropped_fields", sa.Integer(), nullable=False),
        sa.Column("last_push_at", stamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "data_source"),
    )


def downgrade() -> None:
    op.drop_table("push_stat")
    op.drop_index("ix_push_echo_written_at", table_name="push_echo")
    op.drop_index("ix_push_echo_record", table_name="push_echo")
    op.drop_table("push_echo")
    op.drop_index("ux_data_link_external", table_name="data_link")
    op.drop_table("data_link")
    op.drop_index("ux_push_outbox_key", table_name="push_outbox")
    op.drop_index("ix_push_outbox_drain", table_name="push_outbox")
    op.drop_table("push_outbox")
