"""one live group mapping per directory, group and organization

Earlier versions could store the same (group, organization) pair several times
for one directory (also as references differing only in case), and every re-apply
added copies. The copies are folded into
the one with the highest role (a user already got the highest role among them),
the others marked removed so the next sync revokes what they granted.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_mappings = sa.table(
    "group_mappings",
    sa.column("id", sa.Integer),
    sa.column("directory_id", sa.Integer),
    sa.column("source_group", sa.String),
    sa.column("organization_id", sa.Integer),
    sa.column("role_id", sa.Integer),
    sa.column("position", sa.Integer),
    sa.column("removed", sa.Boolean),
)
_roles = sa.table("roles", sa.column("id", sa.Integer), sa.column("rank", sa.Integer))


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_mappings.c.id, _mappings.c.directory_id, _mappings.c.source_group, _mappings.c.organization_id)
        .join(_roles, _roles.c.id == _mappings.c.role_id)
        .where(_mappings.c.removed.is_(False))
        .order_by(_roles.c.rank.desc(), _mappings.c.position, _mappings.c.id)
    )
    kept: set[tuple[int, str, int]] = set()
    copies: list[int] = []
    for mapping_id, directory_id, source_group, organization_id in rows:
        # Group references are compared as the document check compares them: case-insensitively.
        key = (directory_id, source_group.strip().casefold(), organization_id)
        if key in kept:
            copies.append(mapping_id)
        kept.add(key)
    if copies:
        connection.execute(sa.update(_mappings).where(_mappings.c.id.in_(copies)).values(removed=True))
    op.create_index(
        "uq_group_mappings_live",
        "group_mappings",
        ["directory_id", "source_group", "organization_id"],
        unique=True,
        sqlite_where=sa.text("removed = 0"),
        postgresql_where=sa.text("removed = false"),
    )


def downgrade() -> None:
    op.drop_index("uq_group_mappings_live", table_name="group_mappings")
