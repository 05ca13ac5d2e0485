"""scheduling and worker leases

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_RUNNING = sa.text("status = 'running'")
_QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_table(
        "directory_schedules",
        sa.Column("directory_id", sa.Integer(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("schedule_key", sa.String(length=200), nullable=False),
        sa.Column("last_slot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["directory_id"],
            ["directories.id"],
            name=op.f("fk_directory_schedules_directory_id_directories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("directory_id", name=op.f("pk_directory_schedules")),
    )
    op.create_index(op.f("ix_directory_schedules_next_run_at"), "directory_schedules", ["next_run_at"], unique=False)
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("retry_of_run_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_sync_runs_retry_of_run_id_sync_runs"),
            "sync_runs",
            ["retry_of_run_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # A database written before this revision may hold stray active runs of one directory; keep the
    # newest of each status so the unique indexes below can be built.
    for status in ("queued", "running"):
        op.execute(
            sa.text(
                "UPDATE sync_runs SET status = 'failed', message = 'superseded by a newer run (upgrade)' "
                "WHERE status = :status AND id NOT IN "
                "(SELECT max(id) FROM sync_runs WHERE status = :status GROUP BY directory_id)"
            ).bindparams(status=status)
        )
    for name, where in (("uq_sync_runs_one_running", _RUNNING), ("uq_sync_runs_one_queued", _QUEUED)):
        op.create_index(name, "sync_runs", ["directory_id"], unique=True, postgresql_where=where, sqlite_where=where)
    op.create_index("ix_sync_runs_queued", "sync_runs", ["queued_at"], postgresql_where=_QUEUED, sqlite_where=_QUEUED)
    op.create_index(
        "ix_sync_runs_running_lease",
        "sync_runs",
        ["lease_expires_at"],
        postgresql_where=_RUNNING,
        sqlite_where=_RUNNING,
    )


def downgrade() -> None:
    for name in (
        "ix_sync_runs_running_lease",
        "ix_sync_runs_queued",
        "uq_sync_runs_one_queued",
        "uq_sync_runs_one_running",
    ):
        op.drop_index(name, table_name="sync_runs")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_sync_runs_retry_of_run_id_sync_runs"), type_="foreignkey")
        batch_op.drop_column("retry_of_run_id")
        batch_op.drop_column("attempt")
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("scheduled_for")
    op.drop_index(op.f("ix_directory_schedules_next_run_at"), table_name="directory_schedules")
    op.drop_table("directory_schedules")
