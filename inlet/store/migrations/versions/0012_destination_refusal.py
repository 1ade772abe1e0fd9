"""destination refusal: the breaker remembers which credentials the team's app refused (401/403), so a fixed
secret is tried at once instead of after the cool-down

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destination_state") as batch_op:
        batch_op.add_column(sa.Column("refused_credentials", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destination_state") as batch_op:
        batch_op.drop_column("refused_credentials")
