"""Loading what the planner needs from the store: current state, the source mirror, the cursor."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.orm import Session

from accessiq.store.tables import (
    Cursor,
    Group,
    GroupMapping,
    GroupMembership,
    OrganizationMembership,
    RunChange,
    RunError,
    SourceObject,
    SyncRun,
    User,
)
from accessiq.sync.guard import PUSH_WINDOW
from accessiq.sync.planner import StoredGroup, StoredUser, StoreState
from accessiq.sync.source import MirrorKey

# Plain columns rather than ORM objects: loading 100,000 users stays a matter of tuples.
_USER_COLUMNS = (
    User.id,
    User.email,
    User.username,
    User.given_name,
    User.family_name,
    User.display_name,
    User.status,
    User.deactivated_by,
    User.attributes,
    User.directory_id,
    User.external_id,
    User.email_key,
)


def owned_origins(session: Session, directory_id: int) -> list[str]:
    """Origins of organization memberships that this directory's syncs create and remove."""
    mapping_ids = session.scalars(select(GroupMapping.id).where(GroupMapping.directory_id == directory_id))
    return [f"directory-default:{directory_id}"] + [f"group-mapping:{i}" for i in mapping_ids]


_IN_CHUNK = 500


def _rows(session: Session, query: Any) -> Any:
    """The rows of a column query, through Core: the ORM's result handling costs as much again
    per row, and the loads here can read a whole directory."""
    return session.connection().execute(query)


def _in_chunks(column: Any, values: Collection[str] | None) -> Iterator[ColumnElement[bool]]:
    """`column IN (...)` a slice at a time; a single TRUE (every row) when `values` is None."""
    if values is None:
        yield true()
        return
    ordered = sorted(values)
    for start in range(0, len(ordered), _IN_CHUNK):
        yield column.in_(ordered[start : start + _IN_CHUNK])


def load_store_state(
    session: Session, directory_id: int, users: Collection[str] | None = None, emails: Collection[str] | None = None
) -> StoreState:
    """The store state a plan diffs against: all of it, or only what planning `users` needs.

    With `users` (external ids), only those users of this directory, their group and organization
    memberships, and the owners of `emails` (lowered) are loaded; every group of the directory is.
    """
    state = StoreState()
    mine = User.directory_id == directory_id
    # This directory's users and unlinked local users in full (they may be linked);
    # other directories' users only matter for their email.
    for condition in _in_chunks(User.email_key, None if users is None else emails):
        query = select(*_USER_COLUMNS).where(or_(mine, User.directory_id.is_(None)))
        for *values, email_key in _rows(session, query.where(condition)):
            user = _stored(values)
            state.emails[email_key] = user
            if users is None and user.directory_id == directory_id and user.external_id is not None:
                state.users[user.external_id] = user
        others = select(User.id, User.email, User.email_key, User.directory_id, User.external_id, User.status).where(
            User.directory_id != directory_id
        )
        for user_id, email, email_key, other_directory, external_id, status in _rows(session, others.where(condition)):
            state.emails[email_key] = StoredUser(
                user_id, email, None, None, None, None, status, None, {}, other_directory, external_id
            )
    if users is not None:
        for condition in _in_chunks(User.external_id, users):
            for *values, _ in _rows(session, select(*_USER_COLUMNS).where(mine, condition)):
                user = _stored(values)
                state.users[str(user.external_id)] = user
    for group in session.scalars(select(Group).where(Group.directory_id == directory_id)):
        assert group.external_id is not None
        state.groups[group.external_id] = StoredGroup(group.id, group.external_id, group.name, group.description)
    origins = owned_origins(session, directory_id)
    for condition in _in_chunks(User.external_id, users):
        members = (
            select(Group.external_id, User.external_id)
            .join(GroupMembership, GroupMembership.group_id == Group.id)
            .join(User, User.id == GroupMembership.user_id)
            .where(Group.directory_id == directory_id, mine)
        )
        state.group_members |= {
            (str(group_ext), str(user_ext)) for group_ext, user_ext in _rows(session, members.where(condition))
        }
        grants = (
            select(
                OrganizationMembership.organization_id,
                User.external_id,
                OrganizationMembership.origin,
                OrganizationMembership.role_id,
            )
            .join(User, User.id == OrganizationMembership.user_id)
            .where(mine, OrganizationMembership.origin.in_(origins))
        )
        for org_id, user_ext, origin, role_id in _rows(session, grants.where(condition)):
            state.org_memberships[(org_id, str(user_ext), origin)] = role_id
    return state


def _stored(values: list[Any]) -> StoredUser:
    user = StoredUser(*values)
    return replace(user, attributes={}) if user.attributes is None else user


def active_synced_users(session: Session, directory_id: int) -> int:
    return session.scalar(select(func.count()).where(User.directory_id == directory_id, User.status == "active")) or 0


def group_member_counts(session: Session, directory_id: int, external_ids: Collection[str]) -> dict[str, int]:
    """Stored direct members of each of these groups of the directory, by the group's external id."""
    counts: dict[str, int] = {}
    if not external_ids:
        return counts
    for condition in _in_chunks(Group.external_id, external_ids):
        query = (
            select(Group.external_id, func.count())
            .join(GroupMembership, GroupMembership.group_id == Group.id)
            .where(Group.directory_id == directory_id, condition)
            .group_by(Group.external_id)
        )
        counts.update((str(ext), int(n)) for ext, n in _rows(session, query))
    return counts


def store_counts(session: Session, directory_id: int) -> dict[str, int]:
    """Row counts of what this directory's syncs own; a change made outside a sync alters one."""
    users = select(func.count()).where(User.directory_id == directory_id)
    members = (
        select(func.count())
        .select_from(GroupMembership)
        .join(Group, Group.id == GroupMembership.group_id)
        .where(Group.directory_id == directory_id)
    )
    grants = select(func.count()).where(OrganizationMembership.origin.in_(owned_origins(session, directory_id)))
    groups = select(func.count()).where(Group.directory_id == directory_id)
    return {
        name: session.scalar(query) or 0
        for name, query in (("users", users), ("groups", groups), ("group_members", members), ("grants", grants))
    }


def users_touched_since(session: Session, directory_id: int, since: datetime) -> set[str]:
    """This directory's users changed after `since` (an administrator's (de)activation)."""
    return {
        str(ext)
        for ext in session.scalars(
            select(User.external_id).where(User.directory_id == directory_id, User.updated_at > since)
        )
        if ext is not None
    }


def recent_push_deactivations(session: Session, directory_id: int, now: datetime) -> int:
    """Users that applied pushes deactivated within the guard's window, counted since the last approval."""
    since = now - PUSH_WINDOW
    approved = session.scalar(
        select(func.max(SyncRun.finished_at)).where(SyncRun.directory_id == directory_id, SyncRun.trigger == "approval")
    )
    if approved is not None and approved > since:
        since = approved
    counts = session.scalars(
        select(SyncRun.counts).where(
            SyncRun.directory_id == directory_id,
            SyncRun.trigger == "push",
            SyncRun.dry_run.is_(False),
            SyncRun.status.in_(("succeeded", "succeeded_with_errors")),
            SyncRun.finished_at > since,
        )
    )
    return sum(int((c or {}).get("users_deactivated", 0)) for c in counts)


def last_run_leftovers(session: Session, directory_id: int) -> set[str]:
    """Users the last applied run reported an error for or retained as they were."""
    last = session.execute(
        select(SyncRun.id, SyncRun.counts)
        .where(
            SyncRun.directory_id == directory_id,
            SyncRun.dry_run.is_(False),
            SyncRun.status.in_(("succeeded", "succeeded_with_errors")),
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return set()
    run_id, counts = last
    counts = counts or {}
    queries = []
    # The counts say whether there are any: a first sync's log holds a row per change to pass over.
    if counts.get("user_errors", 1):
        queries.append(select(RunError.external_id).where(RunError.run_id == run_id, RunError.object == "user"))
    if counts.get("users_retained", 1):
        queries.append(select(RunChange.external_id).where(RunChange.run_id == run_id, RunChange.action == "retain"))
    return {str(ext) for query in queries for ext in session.scalars(query) if ext is not None}


# The kinds of mirror records a read of the source moves. A pulled directory that also receives
# SCIM pushes keeps the resources its SCIM client wrote beside them, as `scim_user` and `scim_group`
# records, which only pushes move.
SOURCE_KINDS = ("user", "group")


def load_mirror_index(
    session: Session, directory_id: int, users: Collection[str] | None = None
) -> dict[MirrorKey, tuple[str | None, str | None]]:
    """(kind, external id) -> (content hash, mapped email) of every mirrored group and of every
    mirrored user (or only of `users`), without their data."""
    columns = (SourceObject.kind, SourceObject.external_id, SourceObject.hash, SourceObject.email_key)
    mine = SourceObject.directory_id == directory_id
    queries = (
        [select(*columns).where(mine, SourceObject.kind.in_(SOURCE_KINDS))]
        if users is None
        else [select(*columns).where(mine, SourceObject.kind == "group")]
        + [
            select(*columns).where(mine, SourceObject.kind == "user", condition)
            for condition in _in_chunks(SourceObject.external_id, users)
        ]
    )
    return {
        (kind, external_id): (row_hash, email_key)
        for query in queries
        for kind, external_id, row_hash, email_key in _rows(session, query)
    }


def load_mirror_rows(
    session: Session, directory_id: int, kind: str, external_ids: Collection[str] | None
) -> dict[str, Any]:
    """external id -> stored data of the given records of one kind (all of them with None)."""
    rows: dict[str, Any] = {}
    for condition in _in_chunks(SourceObject.external_id, external_ids):
        query = select(SourceObject.external_id, SourceObject.data).where(
            SourceObject.directory_id == directory_id, SourceObject.kind == kind, condition
        )
        rows.update((str(ext), data) for ext, data in _rows(session, query))
    return rows


def users_with_emails(session: Session, directory_id: int, emails: Collection[str]) -> set[str]:
    """Mirrored users whose mapped email (lowered) is one of `emails`."""
    found: set[str] = set()
    for condition in _in_chunks(SourceObject.email_key, emails):
        found |= set(
            session.scalars(
                select(SourceObject.external_id).where(
                    SourceObject.directory_id == directory_id, SourceObject.kind == "user", condition
                )
            )
        )
    return found


def load_mirror(session: Session, directory_id: int, kind: str | None = None) -> dict[MirrorKey, dict[str, Any]]:
    """The stored mirror of the source (its users and groups), or only its records of one kind."""
    query = select(SourceObject.kind, SourceObject.external_id, SourceObject.data).where(
        SourceObject.directory_id == directory_id,
        SourceObject.kind.in_(SOURCE_KINDS) if kind is None else SourceObject.kind == kind,
    )
    return {(kind, external_id): data for kind, external_id, data in _rows(session, query)}


def mirrored_users(session: Session, directory_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).where(SourceObject.directory_id == directory_id, SourceObject.kind == "user")
        )
        or 0
    )


def load_cursor(session: Session, directory_id: int) -> Cursor | None:
    return session.get(Cursor, directory_id)


def fingerprint(state: StoreState, mirror: dict[MirrorKey, dict[str, Any]], cursor: Any) -> str:
    """A digest of everything a plan was made from; a stored plan applies only while it still matches."""
    digest = hashlib.sha256()
    users = sorted(
        (
            u.external_id or "",
            u.id,
            u.email,
            u.username,
            u.given_name,
            u.family_name,
            u.display_name,
            u.status,
            u.deactivated_by,
            json.dumps(u.attributes, sort_keys=True),
            u.directory_id,
        )
        for u in state.users.values()
    )
    for part in (
        users,
        sorted((g.external_id, g.id, g.name, g.description or "") for g in state.groups.values()),
        sorted(state.group_members),
        sorted((*key, role) for key, role in state.org_memberships.items()),
        sorted((kind, ext, json.dumps(data, sort_keys=True)) for (kind, ext), data in mirror.items()),
        json.dumps(cursor, sort_keys=True),
    ):
        digest.update(json.dumps(part, default=str).encode())
    return digest.hexdigest()
