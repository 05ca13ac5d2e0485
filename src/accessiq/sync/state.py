"""Loading what the planner needs from the store: current state, the source mirror, the cursor."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from accessiq.store.tables import (
    Cursor,
    Group,
    GroupMapping,
    GroupMembership,
    OrganizationMembership,
    SourceObject,
    User,
)
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


def load_store_state(session: Session, directory_id: int) -> StoreState:
    state = StoreState()
    # This directory's users and unlinked local users in full (they may be linked);
    # other directories' users only matter for their email.
    for *values, email_key in session.execute(
        select(*_USER_COLUMNS).where(or_(User.directory_id == directory_id, User.directory_id.is_(None)))
    ):
        user = StoredUser(*values)
        if user.attributes is None:
            user = replace(user, attributes={})
        state.emails[email_key] = user
        if user.directory_id == directory_id and user.external_id is not None:
            state.users[user.external_id] = user
    for user_id, email, email_key, other_directory, external_id, status in session.execute(
        select(User.id, User.email, User.email_key, User.directory_id, User.external_id, User.status).where(
            User.directory_id != directory_id
        )
    ):
        state.emails[email_key] = StoredUser(
            user_id, email, None, None, None, None, status, None, {}, other_directory, external_id
        )
    for group in session.scalars(select(Group).where(Group.directory_id == directory_id)):
        assert group.external_id is not None
        state.groups[group.external_id] = StoredGroup(group.id, group.external_id, group.name, group.description)
    state.group_members = {
        (str(group_ext), str(user_ext))
        for group_ext, user_ext in session.execute(
            select(Group.external_id, User.external_id)
            .join(GroupMembership, GroupMembership.group_id == Group.id)
            .join(User, User.id == GroupMembership.user_id)
            .where(Group.directory_id == directory_id, User.directory_id == directory_id)
        )
    }
    state.org_memberships = {
        (org_id, str(user_ext), origin): role_id
        for org_id, user_ext, origin, role_id in session.execute(
            select(
                OrganizationMembership.organization_id,
                User.external_id,
                OrganizationMembership.origin,
                OrganizationMembership.role_id,
            )
            .join(User, User.id == OrganizationMembership.user_id)
            .where(
                User.directory_id == directory_id,
                OrganizationMembership.origin.in_(owned_origins(session, directory_id)),
            )
        )
    }
    return state


def load_mirror(session: Session, directory_id: int) -> dict[MirrorKey, dict[str, Any]]:
    return {
        (kind, external_id): data
        for kind, external_id, data in session.execute(
            select(SourceObject.kind, SourceObject.external_id, SourceObject.data).where(
                SourceObject.directory_id == directory_id
            )
        )
    }


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
