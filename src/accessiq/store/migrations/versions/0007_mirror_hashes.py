"""mirror content hashes, mapped emails and the basis of the last applied plan

Revision ID: 0007
Revises: 0006

Rows mirrored before this revision have no hash: the first run after the upgrade sees every
record as changed and plans the whole directory once, as every run did before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_objects") as batch:
        batch.add_column(sa.Column("hash", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
    with op.batch_alter_table("cursors") as batch:
        batch.add_column(sa.Column("basis", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cursors") as batch:
        batch.drop_column("basis")
    with op.batch_alter_table("source_objects") as batch:
        batch.drop_column("email_key")
        batch.drop_column("hash")
