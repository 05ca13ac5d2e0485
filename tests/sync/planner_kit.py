"""Small builders for planner tests: a source, a store state and a context in a few lines."""

from __future__ import annotations

from typing import Any

from accessiq.connectors.base import SourceGroup, SourceUser
from accessiq.connectors.file import FileConnector
from accessiq.sync.mapping import CompiledMapping
from accessiq.sync.planner import MappingRule, PlanContext, StoredGroup, StoredUser, StoreState
from accessiq.sync.settings import SyncSettings
from accessiq.sync.source import MirrorGroup, SourceSnapshot

DIRECTORY = 1
ROLES = {1: "owner", 2: "admin", 3: "member", 4: "viewer"}
ROLE_IDS = {name: role_id for role_id, name in ROLES.items()}
ORGS = {10: "acme", 11: "acme-eng", 12: "acme-it"}
ORG_IDS = {slug: org_id for org_id, slug in ORGS.items()}


def user(
    ext: str, email: str | None = None, *, active: bool = True, org_unit: str | None = None, **data: Any
) -> SourceUser:
    record = {
        "id": ext,
        "email": email if email is not None else f"{ext}@example.com",
        "given_name": ext.title(),
        "family_name": "Doe",
        "display_name": f"{ext.title()} Doe",
        "username": ext,
        **data,
    }
    return SourceUser(ext, record, active, org_unit)


def group(
    ext: str,
    name: str | None = None,
    users: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    **fields: Any,
) -> MirrorGroup:
    return MirrorGroup(SourceGroup(ext, name or ext, **fields), set(users), set(groups))


def source(
    *items: SourceUser | MirrorGroup,
    complete: bool = True,
    rejected: list[tuple[str, str | None, str]] | None = None,
) -> SourceSnapshot:
    snapshot = SourceSnapshot(full=True, complete=complete, rejected=rejected or [])
    for item in items:
        if isinstance(item, SourceUser):
            snapshot.users[item.external_id] = item
        else:
            snapshot.groups[item.group.external_id] = item
    return snapshot


def stored(
    ext: str | None,
    user_id: int,
    email: str | None = None,
    *,
    status: str = "active",
    deactivated_by: str | None = None,
    directory_id: int | None = DIRECTORY,
    attributes: dict[str, Any] | None = None,
    **fields: Any,
) -> StoredUser:
    name = (ext or "local").title()
    values = {
        "username": ext,
        "given_name": name,
        "family_name": "Doe",
        "display_name": f"{name} Doe",
        **fields,
    }
    return StoredUser(
        id=user_id,
        email=email or f"{ext}@example.com",
        status=status,
        deactivated_by=deactivated_by,
        attributes=attributes or {},
        directory_id=directory_id,
        external_id=ext,
        **values,
    )


def state(
    *users: StoredUser,
    groups: tuple[StoredGroup, ...] = (),
    members: set[tuple[str, str]] | None = None,
    org_memberships: dict[tuple[int, str, str], int] | None = None,
) -> StoreState:
    current = StoreState()
    for u in users:
        current.emails[u.email.casefold()] = u
        if u.directory_id == DIRECTORY and u.external_id:
            current.users[u.external_id] = u
    current.groups = {g.external_id: g for g in groups}
    current.group_members = members or set()
    current.org_memberships = org_memberships or {}
    return current


def rule(
    mapping_id: int, source_group: str, organization: str, role: str, removed: bool = False
) -> MappingRule:
    return MappingRule(
        mapping_id, source_group, ORG_IDS[organization], organization, ROLE_IDS[role], role, removed
    )


def context(
    *rules: MappingRule,
    pins: dict[str, str] | None = None,
    default_organization: str | None = None,
    default_role: str = "member",
    **settings: Any,
) -> PlanContext:
    parsed = SyncSettings.model_validate({"default_role": default_role, **settings})
    return PlanContext(
        directory_id=DIRECTORY,
        settings=parsed,
        mapping=CompiledMapping.build(FileConnector.default_mapping, parsed.attribute_mapping),
        group_mappings=rules,
        default_organization=(ORG_IDS[default_organization], default_organization)
        if default_organization
        else None,
        default_role=(ROLE_IDS[default_role], default_role),
        pins=pins or {},
        organizations=ORGS,
        roles=ROLES,
    )


def steps(plan: Any) -> list[tuple[str, str, str | None]]:
    return [(op.object, op.action, op.external_id) for op in plan.operations]
