"""poll errors: why a connection's last poll failed (a batch's poll that errored or ran past its time limit), and
when, for `inlet status`; a poll that goes through clears it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_policy") as batch_op:
        batch_op.add_column(sa.Column("last_poll_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_poll_error_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_policy") as batch_op:
        batch_op.drop_column("last_poll_error_at")
        batch_op.drop_column("last_poll_error")
