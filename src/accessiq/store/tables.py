"""The tables. Schemas for the API live elsewhere; these are rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends; SQLite keeps naive text, so tag it back on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Higher rank wins when a user holds several roles in one organization.
    rank: Mapped[int] = mapped_column(Integer)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)


class Directory(Base):
    __tablename__ = "directories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(40))
    # Non-secret connection fields, as the document gave them.
    connection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Fernet token of a JSON object {field: value}; never leaves the store layer decrypted
    # except to build a connector.
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # How each secret was given when it was an `env:`/`file:` reference, for export.
    secret_refs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Group references (mapping `source_group`, filter groups) pinned to external ids.
    group_pins: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The Add Directory wizard step its administrator last reached, until they finish it;
    # None for a finished setup and for directories made by a document (CLI, API).
    setup_step: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class GroupMapping(Base):
    __tablename__ = "group_mappings"
    # One live mapping per (directory, group, organization): a user has one role there, and
    # re-applying a directory's document must find the row it made, not add another.
    __table_args__ = (
        Index(
            "uq_group_mappings_live",
            "directory_id",
            "source_group",
            "organization_id",
            unique=True,
            sqlite_where=text("removed = 0"),
            postgresql_where=text("removed = false"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    directory_id: Mapped[int] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    source_group: Mapped[str] = mapped_column(String(500))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"))
    # A mapping taken out of the document stays until a sync revokes what it granted.
    removed: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("directory_id", "external_id", name="uq_users_directory_external"),
        # Emails are unique case-insensitively: the column holds the lowered form.
        UniqueConstraint("email_key", name="uq_users_email_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    username: Mapped[str | None] = mapped_column(String(320), nullable=True)
    given_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    family_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(400), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    deactivated_by: Mapped[str | None] = mapped_column(String(20), nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Found by directory through uq_users_directory_external.
    directory_id: Mapped[int | None] = mapped_column(ForeignKey("directories.id", ondelete="SET NULL"), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("directory_id", "external_id", name="uq_groups_directory_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Found by directory through uq_groups_directory_external.
    directory_id: Mapped[int | None] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(400))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GroupMembership(Base):
    __tablename__ = "group_memberships"
    # On SQLite only the key's b-tree, no hidden rowid beside it (a first sync writes millions).
    __table_args__ = {"sqlite_with_rowid": False}

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class OrganizationMembership(Base):
    __tablename__ = "organization_memberships"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id", "origin", name="uq_org_memberships_origin"),
        Index("ix_org_memberships_origin", "origin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"))
    # `manual`, `directory-default:<directory id>` or `group-mapping:<mapping id>`.
    origin: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SourceObject(Base):
    """The mirror of the source as of the last applied run; incremental reads update it."""

    __tablename__ = "source_objects"
    __table_args__ = (Index("ix_source_objects_email_key", "directory_id", "kind", "email_key"),)

    directory_id: Mapped[int] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # user | group
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A digest of `data`, so a full read tells unchanged records without loading them.
    hash: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Users: the lowered email the mapping gave the record when it was last planned (None when
    # it was out of scope or failed), so a run finds unplanned users that share an email.
    email_key: Mapped[str | None] = mapped_column(String(320), nullable=True)


class Cursor(Base):
    __tablename__ = "cursors"

    directory_id: Mapped[int] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # What the last applied plan was made from (settings, mappings, group references, store
    # counts): a run plans only what changed while this still holds, everything otherwise.
    basis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_directory_status", "directory_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    directory_id: Mapped[int] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(30), default="queued")
    requested_mode: Mapped[str | None] = mapped_column(String(20), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Notes from the read and the guard (e.g. "delta token expired; full resync").
    notes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # A dry or blocked run keeps what it would apply, so approval applies exactly that.
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # approved | rejected, for a blocked run or a dry run whose plan was acted on.
    resolution: Mapped[str | None] = mapped_column(String(20), nullable=True)
    source_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), nullable=True)
    # Queue bookkeeping: who holds the run and until when.
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # -- queue and schedule (migration 0002) --
    # The schedule slot a `schedule` run was queued for (the latest, when missed slots coalesced).
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set by `runs cancel` on a running run; the worker's next checkpoint ends the run `canceled`.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # 1 for a fresh run; a retry after a lost worker counts on from the run it retries.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    retry_of_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), nullable=True)


class RunChange(Base):
    __tablename__ = "run_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    object: Mapped[str] = mapped_column(String(30))  # user | group | group_membership | org_membership
    action: Mapped[str] = mapped_column(String(30))
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    label: Mapped[str] = mapped_column(String(500))
    # {attribute: [before, after]} for updates; the new values for creates.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RunError(Base):
    __tablename__ = "run_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    object: Mapped[str] = mapped_column(String(30))
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message: Mapped[str] = mapped_column(Text)


# -- web UI and REST API (migration 0003) ------------------------------------------------------


class Administrator(Base):
    """A person who signs in to the web UI. Only an Argon2 hash of the password is kept."""

    __tablename__ = "administrators"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # Lowered email: sign-in is case-insensitive and one address has one account.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiToken(Base):
    """A bearer token for the REST API. Only a SHA-256 digest of the token is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The first characters of the token, so an admin can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # `read` (GET only) or `write` (everything).
    scope: Mapped[str] = mapped_column(String(20), default="write")
    created_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebSession(Base):
    """A signed-in browser. The cookie holds a random id; the row holds its SHA-256 digest."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    administrator_id: Mapped[int] = mapped_column(ForeignKey("administrators.id", ondelete="CASCADE"), index=True)
    # The synchronizer token every state-changing form and htmx request of this session carries.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignInThrottle(Base):
    """Failed sign-ins of one account or one client address within a window (migration 0004).

    Kept in the store so that every process behind a load balancer counts the same failures.
    """

    __tablename__ = "sign_in_throttles"

    # SHA-256 of `account:<email>` or `address:<ip>`: neither typed emails nor addresses are kept.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # After this the row remembers nothing that matters and may be deleted.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# -- scheduling and the run queue (migration 0002) -------------------------------------------


class DirectorySchedule(Base):
    """Where a directory's schedule stands: the next slot, and the settings it was computed from."""

    __tablename__ = "directory_schedules"

    directory_id: Mapped[int] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True)
    # None while the schedule is off.
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    # `frequency|enabled` as last seen; a change of either recomputes next_run_at.
    schedule_key: Mapped[str] = mapped_column(String(200), default="")
    # The slot the scheduler last queued a run for.
    last_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# At most one queued and one running run per directory, whatever the code above the store does
# (two Sync Nows racing on PostgreSQL, a claim racing a claim). Partial indexes on both backends.
Index(
    "uq_sync_runs_one_running",
    SyncRun.directory_id,
    unique=True,
    postgresql_where=SyncRun.status == "running",
    sqlite_where=SyncRun.status == "running",
)
Index(
    "uq_sync_runs_one_queued",
    SyncRun.directory_id,
    unique=True,
    postgresql_where=SyncRun.status == "queued",
    sqlite_where=SyncRun.status == "queued",
)
# What workers poll: the queue, and leases that may have expired.
Index(
    "ix_sync_runs_queued",
    SyncRun.queued_at,
    postgresql_where=SyncRun.status == "queued",
    sqlite_where=SyncRun.status == "queued",
)
Index(
    "ix_sync_runs_running_lease",
    SyncRun.lease_expires_at,
    postgresql_where=SyncRun.status == "running",
    sqlite_where=SyncRun.status == "running",
)


# -- SCIM push (migration 0008) ---------------------------------------------------------------


class ScimToken(Base):
    """A bearer token that lets an identity provider push to one directory's SCIM endpoint.

    Only a SHA-256 digest is kept. A rotated token keeps working until `expires_at` (the grace
    period for the identity provider to take the new one); a live token has none.
    """

    __tablename__ = "scim_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    directory_id: Mapped[int] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
