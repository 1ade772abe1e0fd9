"""webhook subscriptions: per connection, the app's subscription id, expiry, sealed secret, state and a pending
lifecycle event

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "webhook_subscription",
        sa.Column("connection_id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("app", sa.String(), nullable=False),
        sa.Column("remote_id", sa.String(), nullable=True),
        sa.Column("expires_at", stamp, nullable=True),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("lifecycle", sa.String(), nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("renewed_at", stamp, nullable=True),
        sa.Column("updated_at", stamp, nullable=False),
        sa.PrimaryKeyConstraint("connection_id"),
    )
    op.create_index("ix_webhook_subscription_tenant_id", "webhook_subscription", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_subscription_tenant_id", table_name="webhook_subscription")
    op.drop_table("webhook_subscription")
