"""sync requests: a full import or a reconciliation asked for out of turn (the API's "start a reconciliation"),
submitted at the scheduler's next tick

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_policy") as batch_op:
        batch_op.add_column(sa.Column("requested_work", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_policy") as batch_op:
        batch_op.drop_column("requested_at")
        batch_op.drop_column("requested_work")
