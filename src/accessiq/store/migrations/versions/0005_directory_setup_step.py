"""the Add Directory wizard step a directory's setup stopped at

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("directories") as batch:
        batch.add_column(sa.Column("setup_step", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("directories") as batch:
        batch.drop_column("setup_step")
