"""Users, groups, organizations and roles: what administrators review and change by hand."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accessiq.errors import ConfigurationError, ConflictError, NotFoundError
from accessiq.services import LIKE_ESCAPE, contains_pattern, parse_id
from accessiq.services.access import AccessExplainer, Member
from accessiq.store.tables import (
    Directory,
    Group,
    GroupMembership,
    Organization,
    OrganizationMembership,
    Role,
    SourceObject,
    User,
    utcnow,
)
from accessiq.sync.context import settings_of
from accessiq.sync.emails import email_problem

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


# -- users ---------------------------------------------------------------------------------


def get_user(session: Session, ref: str | int) -> User:
    """A user by id or by email (case-insensitive)."""
    text = str(ref).strip()
    row_id = parse_id(text)
    user = session.get(User, row_id) if row_id is not None else None
    if user is None:
        user = session.scalar(select(User).where(User.email_key == text.casefold()))
    if user is None:
        raise NotFoundError(f"no user {text!r}", hint="see `accessiq users list`")
    return user


def list_users(
    session: Session,
    directory: Directory | None = None,
    *,
    status: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[User]:
    query = select(User).order_by(User.email_key)
    if directory is not None:
        query = query.where(User.directory_id == directory.id)
    if status:
        query = query.where(User.status == status)
    if search:
        like = contains_pattern(search.casefold())
        query = query.where(
            User.email_key.like(like, escape=LIKE_ESCAPE) | func.lower(User.display_name).like(like, escape=LIKE_ESCAPE)
        )
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return list(session.scalars(query))


def users_json(session: Session, users: list[User]) -> list[dict[str, Any]]:
    """Users in the SPEC §6 shape, with group names and organization memberships."""
    ids = [u.id for u in users]
    groups: dict[int, list[str]] = defaultdict(list)
    memberships: dict[int, list[dict[str, Any]]] = defaultdict(list)
    by_id = {u.id: u for u in users}
    explainer = AccessExplainer(session)
    directories = dict(session.execute(select(Directory.id, Directory.name)).all())
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for user_id, name in session.execute(
            select(GroupMembership.user_id, Group.name)
            .join(Group, Group.id == GroupMembership.group_id)
            .where(GroupMembership.user_id.in_(chunk))
            .order_by(Group.name)
        ):
            groups[user_id].append(name)
        for user_id, slug, role, origin in session.execute(
            select(OrganizationMembership.user_id, Organization.slug, Role.name, OrganizationMembership.origin)
            .join(Organization, Organization.id == OrganizationMembership.organization_id)
            .join(Role, Role.id == OrganizationMembership.role_id)
            .where(OrganizationMembership.user_id.in_(chunk))
            .order_by(
                OrganizationMembership.user_id, Organization.slug, Role.rank.desc(), OrganizationMembership.origin
            )
        ):
            user = by_id[user_id]
            held = memberships[user_id]
            held.append(
                {
                    "organization": slug,
                    "role": role,
                    "origin": origin,
                    # Highest rank first within an organization: the first one sets the effective role.
                    "effective": not held or held[-1]["organization"] != slug,
                    "granted_by": explainer.granted_by(origin, Member(user.directory_id, user.external_id, user.email)),
                }
            )
    return [
        {
            "id": u.id,
            "email": u.email,
            "username": u.username,
            "given_name": u.given_name,
            "family_name": u.family_name,
            "display_name": u.display_name,
            "status": u.status,
            "deactivated_by": u.deactivated_by,
            "directory": directories.get(u.directory_id) if u.directory_id else None,
            "external_id": u.external_id,
            "attributes": u.attributes or {},
            "groups": groups[u.id],
            "memberships": memberships[u.id],
            "effective_roles": [
                {"organization": m["organization"], "role": m["role"]} for m in memberships[u.id] if m["effective"]
            ],
        }
        for u in users
    ]


def create_user(
    session: Session,
    email: str,
    *,
    given_name: str | None = None,
    family_name: str | None = None,
    username: str | None = None,
) -> User:
    """A local user, not linked to any directory."""
    email = email.strip()
    if not _EMAIL.match(email):
        raise ConfigurationError(f"{email!r} is not a valid email address", field="email")
    # The same rule as for synced users: a look-alike of another address is no address to create.
    problem = email_problem(email)
    if problem:
        raise ConfigurationError(problem, field="email")
    if session.scalar(select(User.id).where(User.email_key == email.casefold())) is not None:
        raise ConflictError(f"a user with email {email} already exists")
    display = " ".join(part for part in (given_name, family_name) if part) or None
    user = User(
        email=email,
        email_key=email.casefold(),
        username=username or email,
        given_name=given_name,
        family_name=family_name,
        display_name=display,
        status="active",
        attributes={},
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


def deactivate_user(session: Session, user: User) -> User:
    """An administrator's deactivation: sync never reactivates it."""
    user.status = "deactivated"
    user.deactivated_by = "admin"
    user.updated_at = utcnow()
    return user


def delete_user(session: Session, user: User) -> None:
    """Remove a deactivated user for good, with their memberships; their email is free again.

    Only deactivated users: an active one must be deactivated first, so nobody loses access by
    a slip. A synced user that comes back in the directory is created anew, without the old
    user's manual memberships.
    """
    if user.status != "deactivated":
        raise ConflictError(
            f"{user.email} is active; only deactivated users can be deleted",
            hint=f"deactivate first: accessiq users deactivate {user.email}",
        )
    session.delete(user)
    session.flush()


def reactivation_warning(session: Session, user: User) -> str | None:
    """Why the next sync would deactivate this user again if an administrator activates them, or None.

    Read from the directory's source as its last applied sync saw it: the user disabled there,
    gone from it, or (deactivated by that sync while present and enabled) outside its user filter.
    """
    if user.directory_id is None or user.external_id is None:
        return None
    directory = session.get(Directory, user.directory_id)
    if directory is None or settings_of(directory).deactivation != "deactivate":
        return None
    record = session.scalar(
        select(SourceObject.data).where(
            SourceObject.directory_id == directory.id,
            SourceObject.kind == "user",
            SourceObject.external_id == user.external_id,
        )
    )
    name = directory.name
    if record is None:
        seen = session.scalar(
            select(SourceObject.external_id)
            .where(SourceObject.directory_id == directory.id, SourceObject.kind == "user")
            .limit(1)
        )
        if seen is None:
            return None  # no sync has read this directory's users yet: nothing to tell
        state, fix = f"is no longer in {name}", f"restore them in {name}"
    elif not record.get("active", True):
        state, fix = f"is disabled in {name}", f"enable them in {name}"
    elif user.deactivated_by == "sync":
        state, fix = f"is outside the users {name} syncs (its user filter)", f"change the user filter of {name}"
    else:
        return None
    return (
        f"{user.email} {state}, so the next sync of {name} will deactivate them again. "
        f"To keep them active, {fix} first, or set the deactivation setting of {name} to ignore."
    )


def activate_user(session: Session, user: User) -> User:
    user.status = "active"
    user.deactivated_by = None
    user.updated_at = utcnow()
    return user


def user_groups(session: Session, user: User) -> list[dict[str, Any]]:
    """The groups that hold a user directly, with their ids (for links), by name."""
    rows = session.execute(
        select(Group.id, Group.name)
        .join(GroupMembership, GroupMembership.group_id == Group.id)
        .where(GroupMembership.user_id == user.id)
        .order_by(func.lower(Group.name), Group.id)
    )
    return [{"id": group_id, "name": name} for group_id, name in rows]


# -- groups --------------------------------------------------------------------------------


def list_groups(session: Session, directory: Directory | None = None) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(select(GroupMembership.group_id, func.count()).group_by(GroupMembership.group_id)).all()
    )
    directories = dict(session.execute(select(Directory.id, Directory.name)).all())
    query = select(Group).order_by(func.lower(Group.name), Group.id)
    if directory is not None:
        query = query.where(Group.directory_id == directory.id)
    return [
        {
            "id": g.id,
            "name": g.name,
            "description": g.description,
            "directory": directories.get(g.directory_id) if g.directory_id else None,
            "external_id": g.external_id,
            "members": counts.get(g.id, 0),
        }
        for g in session.scalars(query)
    ]


# -- organizations and roles ---------------------------------------------------------------


def get_organization(session: Session, slug: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None and (row_id := parse_id(slug)) is not None:
        org = session.get(Organization, row_id)
    if org is None:
        raise NotFoundError(f"no organization {slug!r}", hint=f"create it: accessiq orgs create {slug}")
    return org


def create_organization(session: Session, slug: str, name: str | None = None) -> Organization:
    if not _SLUG.match(slug):
        raise ConfigurationError(
            f"{slug!r} is not a slug: use lowercase letters, digits and '-', starting with a letter or digit",
            field="slug",
        )
    if name is not None and len(name) > 200:
        raise ConfigurationError("an organization's name has at most 200 characters", field="name")
    if session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None:
        raise ConflictError(f"organization {slug!r} already exists")
    org = Organization(slug=slug, name=name or slug, created_at=utcnow())
    session.add(org)
    session.flush()
    return org


def list_organizations(session: Session) -> list[dict[str, Any]]:
    members = dict(
        session.execute(
            select(
                OrganizationMembership.organization_id,
                func.count(func.distinct(OrganizationMembership.user_id)),
            ).group_by(OrganizationMembership.organization_id)
        ).all()
    )
    return [
        {"id": o.id, "slug": o.slug, "name": o.name, "members": members.get(o.id, 0)}
        for o in session.scalars(select(Organization).order_by(Organization.slug))
    ]


def organization_members(
    session: Session, org: Organization, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """An organization's members by email: each user with their effective role there and every
    membership that grants a role there, explained."""
    query = (
        select(User)
        .where(
            User.id.in_(
                select(OrganizationMembership.user_id).where(OrganizationMembership.organization_id == org.id)
            )
        )
        .order_by(User.email_key)
    )
    if limit is not None:
        query = query.limit(limit).offset(offset)
    members = users_json(session, list(session.scalars(query)))
    for member in members:
        member["memberships"] = [m for m in member["memberships"] if m["organization"] == org.slug]
        member["role"] = member["memberships"][0]["role"]
    return members


def get_group(session: Session, ref: str | int) -> Group:
    row_id = parse_id(str(ref))
    group = session.get(Group, row_id) if row_id is not None else None
    if group is None:
        raise NotFoundError(f"no group {str(ref)!r}", hint="see `accessiq groups list`")
    return group


def get_role(session: Session, name: str) -> Role:
    role = session.scalar(select(Role).where(Role.name == name))
    if role is None:
        known = ", ".join(session.scalars(select(Role.name).order_by(Role.rank.desc())))
        raise NotFoundError(f"no role {name!r}", hint=f"roles: {known}")
    return role


def list_roles(session: Session) -> list[Role]:
    return list(session.scalars(select(Role).order_by(Role.rank.desc())))


def create_role(session: Session, name: str, rank: int) -> Role:
    if session.scalar(select(Role.id).where(Role.name == name)) is not None:
        raise ConflictError(f"role {name!r} already exists")
    role = Role(name=name, rank=rank, builtin=False)
    session.add(role)
    session.flush()
    return role


def add_member(session: Session, org: Organization, user: User, role: Role) -> OrganizationMembership:
    """Grant or change a manual membership; sync never touches it."""
    membership = session.scalar(
        select(OrganizationMembership).where(
            OrganizationMembership.organization_id == org.id,
            OrganizationMembership.user_id == user.id,
            OrganizationMembership.origin == "manual",
        )
    )
    if membership is None:
        membership = OrganizationMembership(
            organization_id=org.id, user_id=user.id, origin="manual", role_id=role.id, created_at=utcnow()
        )
        session.add(membership)
    membership.role_id = role.id
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError(f"{user.email} is already a manual member of {org.slug}") from None
    return membership


def remove_member(session: Session, org: Organization, user: User) -> None:
    """Remove the manual membership; memberships from sync stay (they follow the directory)."""
    membership = session.scalar(
        select(OrganizationMembership).where(
            OrganizationMembership.organization_id == org.id,
            OrganizationMembership.user_id == user.id,
            OrganizationMembership.origin == "manual",
        )
    )
    if membership is None:
        raise NotFoundError(f"{user.email} has no manual membership in {org.slug}")
    session.delete(membership)
