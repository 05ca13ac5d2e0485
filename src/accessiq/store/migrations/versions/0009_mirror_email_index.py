"""an index on the mirror's mapped emails

Revision ID: 0009
Revises: 0008

An incremental run looks up the mirrored users whose mapped email one of the users it plans
also maps to; without an index each look-up read every mirrored user of the directory.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_source_objects_email_key", "source_objects", ["directory_id", "kind", "email_key"])


def downgrade() -> None:
    op.drop_index("ix_source_objects_email_key", table_name="source_objects")
