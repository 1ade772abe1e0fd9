"""sync policy: per connection, poll and reconciliation intervals, webhooks, state, and the scheduler's stamps;
poison inbox events are kept aside with their reason

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "sync_policy",
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("data_source", sa.String(), nullable=False),
        sa.Column("poll_seconds", sa.Integer(), nullable=False),
        sa.Column("reconcile_seconds", sa.Integer(), nullable=False),
        sa.Column("webhooks", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("imported_at", stamp, nullable=True),
        sa.Column("pending_since", sa.Text(), nullable=True),
        sa.Column("import_submitted_at", stamp, nullable=True),
        sa.Column("poll_submitted_at", stamp, nullable=True),
        sa.Column("reconcile_submitted_at", stamp, nullable=True),
        sa.Column("last_poll_at", stamp, nullable=True),
        sa.Column("last_poll_mode", sa.String(), nullable=True),
        sa.Column("last_change_at", stamp, nullable=True),
        sa.Column("last_reconcile_at", stamp, nullable=True),
        sa.Column("drift", sa.JSON(), nullable=True),
        sa.Column("updated_at", stamp, nullable=False),
        sa.PrimaryKeyConstraint("connection_id"),
    )
    op.create_index("ix_sync_policy_tenant_id", "sync_policy", ["tenant_id"])
    with op.batch_alter_table("inbox") as batch_op:
        batch_op.add_column(sa.Column("quarantined_at", stamp, nullable=True))
        batch_op.add_column(sa.Column("quarantine_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch_op:
        batch_op.drop_column("quarantine_reason")
        batch_op.drop_column("quarantined_at")
    op.drop_index("ix_sync_policy_tenant_id", table_name="sync_policy")
    op.drop_table("sync_policy")
