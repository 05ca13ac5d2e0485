"""Why a user holds a role: each organization membership explained from what granted it.

A membership's origin says what granted it (`manual`, `directory-default:<directory id>`,
`group-mapping:<mapping id>`). For a group mapping the explanation also gives the group path
from the mapped group down to the user through nested groups, as the directory's source mirror
(the source as of the last applied sync) holds it: the nesting the sync itself flattened.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from accessiq.services import parse_id
from accessiq.store.tables import (
    Directory,
    Group,
    GroupMapping,
    GroupMembership,
    Organization,
    OrganizationMembership,
    Role,
    SourceObject,
    User,
)
from accessiq.sync.scope import resolve_group_ref
from accessiq.sync.source import MirrorGroup, SourceSnapshot

MANUAL = "manual"
DIRECTORY_DEFAULT = "directory-default"
GROUP_MAPPING = "group-mapping"


@dataclass(frozen=True)
class Member:
    """The user a membership belongs to, as far as an explanation needs them."""

    directory_id: int | None
    external_id: str | None
    label: str


@dataclass(frozen=True)
class _Rule:
    id: int
    directory_id: int
    source_group: str
    organization: str
    role: str
    removed: bool


@dataclass
class _Reach:
    """Who a mapped group holds, transitively: the nearest group holding each user, and how it nests."""

    root: str | None
    parent: dict[str, str | None] = field(default_factory=dict)
    holder: dict[str, str] = field(default_factory=dict)

    def path(self, user_external_id: str) -> list[str]:
        chain: list[str] = []
        group = self.holder.get(user_external_id)
        while group is not None:
            chain.append(group)
            group = self.parent.get(group)
        return chain[::-1]


def _reach(groups: Mapping[str, MirrorGroup], root: str | None) -> _Reach:
    """Breadth first from the mapped group, so each user's path is a shortest one; cycles are tolerated."""
    reach = _Reach(root)
    if root is None:
        return reach
    reach.parent[root] = None
    pending = deque([root])
    while pending:
        entry = groups.get(pending.popleft())
        if entry is None:
            continue
        for user in sorted(entry.users):
            reach.holder.setdefault(user, entry.group.external_id)
        for child in sorted(entry.groups):
            if child not in reach.parent:
                reach.parent[child] = entry.group.external_id
                pending.append(child)
    return reach


class MirrorGroups(Mapping[str, MirrorGroup]):
    """A directory's mirrored groups, read one by one as an explanation reaches them.

    A mapping's group and the groups nested in it are usually a few of many, and each row carries
    its whole member list; only iterating (to find a group by name, or a group's parents) reads all.
    """

    def __init__(self, session: Session, directory_id: int) -> None:
        self.session = session
        self.directory_id = directory_id
        self._read: dict[str, MirrorGroup | None] = {}
        self._complete = False

    def _query(self) -> Select[tuple[str, dict[str, Any]]]:
        return select(SourceObject.external_id, SourceObject.data).where(
            SourceObject.directory_id == self.directory_id, SourceObject.kind == "group"
        )

    @staticmethod
    def _entry(external_id: str, data: dict[str, Any]) -> MirrorGroup:
        return SourceSnapshot.from_mirror({("group", external_id): data}).groups[external_id]

    def __getitem__(self, external_id: str) -> MirrorGroup:
        if external_id not in self._read and not self._complete:
            row = self.session.execute(self._query().where(SourceObject.external_id == external_id)).first()
            self._read[external_id] = None if row is None else self._entry(*row)
        entry = self._read.get(external_id)
        if entry is None:
            raise KeyError(external_id)
        return entry

    def _read_all(self) -> dict[str, MirrorGroup]:
        if not self._complete:
            self._read = {
                external_id: self._entry(external_id, data) for external_id, data in self.session.execute(self._query())
            }
            self._complete = True
        return {external_id: entry for external_id, entry in self._read.items() if entry is not None}

    def __iter__(self) -> Iterator[str]:
        return iter(self._read_all())

    def __len__(self) -> int:
        return len(self._read_all())


class AccessExplainer:
    """Explains memberships; reads each directory's groups and each mapping's reach once per use."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._directories: dict[int, Directory | None] = {}
        self._groups: dict[int, MirrorGroups] = {}
        self._group_ids: dict[int, dict[str, int]] = {}
        self._rules: dict[int, _Rule | None] = {}
        self._reaches: dict[int, _Reach] = {}

    # -- what the store holds ----------------------------------------------------------------

    def directory(self, directory_id: int) -> Directory | None:
        if directory_id not in self._directories:
            self._directories[directory_id] = self.session.get(Directory, directory_id)
        return self._directories[directory_id]

    def groups(self, directory_id: int) -> MirrorGroups:
        """The directory's groups as the mirror holds them, with their direct users and groups."""
        if directory_id not in self._groups:
            self._groups[directory_id] = MirrorGroups(self.session, directory_id)
        return self._groups[directory_id]

    def group_ids(self, directory_id: int) -> dict[str, int]:
        """AccessIQ group ids by external id, for links to group pages."""
        if directory_id not in self._group_ids:
            self._group_ids[directory_id] = {
                str(external_id): group_id
                for group_id, external_id in self.session.execute(
                    select(Group.id, Group.external_id).where(Group.directory_id == directory_id)
                )
            }
        return self._group_ids[directory_id]

    def rule(self, mapping_id: int) -> _Rule | None:
        if mapping_id not in self._rules:
            row = self.session.execute(
                select(GroupMapping, Organization.slug, Role.name)
                .join(Organization, Organization.id == GroupMapping.organization_id)
                .join(Role, Role.id == GroupMapping.role_id)
                .where(GroupMapping.id == mapping_id)
            ).first()
            self._rules[mapping_id] = (
                None
                if row is None
                else _Rule(row[0].id, row[0].directory_id, row[0].source_group, row[1], row[2], row[0].removed)
            )
        return self._rules[mapping_id]

    def reach_of(self, rule: _Rule) -> _Reach:
        if rule.id not in self._reaches:
            groups = self.groups(rule.directory_id)
            directory = self.directory(rule.directory_id)
            pins = (directory.group_pins if directory is not None else None) or {}
            root, _ = resolve_group_ref(rule.source_group, groups, pins)
            self._reaches[rule.id] = _reach(groups, root)
        return self._reaches[rule.id]

    def group_ref(self, directory_id: int, external_id: str) -> dict[str, Any]:
        """A group as explanations name it: its AccessIQ id (for a link, when stored) and name."""
        entry = self.groups(directory_id).get(external_id)
        return {
            "id": self.group_ids(directory_id).get(external_id),
            "name": entry.group.name if entry is not None else external_id,
        }

    # -- explanations ------------------------------------------------------------------------

    def granted_by(self, origin: str, member: Member | None = None) -> dict[str, Any]:
        """What granted a membership, as the API, the pages and the CLI show it.

        With `member`, a group mapping's explanation carries the group path down to that user;
        without, it explains the origin alone (what every membership of that origin shares).
        """
        kind, _, ref = origin.partition(":")
        explained: dict[str, Any] = {
            "kind": kind,
            "directory_id": None,
            "directory": None,
            "mapping": None,
            "path": [],
            "note": None,
        }
        ref_id = parse_id(ref)
        if kind == MANUAL:
            return explained | {"summary": "granted by hand (a manual membership; sync never changes it)"}
        if kind == DIRECTORY_DEFAULT and ref_id is not None:
            name = self._directory_name(ref_id)
            return explained | {
                "directory_id": ref_id,
                "directory": name,
                "summary": f"default organization of directory {name}",
            }
        rule = self.rule(ref_id) if kind == GROUP_MAPPING and ref_id is not None else None
        if rule is None:
            gone = "granted by a sync setting that no longer exists; the next sync revokes it"
            return explained | {"summary": gone, "note": gone}
        name = self._directory_name(rule.directory_id)
        explained |= {
            "directory_id": rule.directory_id,
            "directory": name,
            "mapping": {
                "id": rule.id,
                "source_group": rule.source_group,
                "organization": rule.organization,
                "role": rule.role,
            },
        }
        summary = f"mapping {rule.source_group} → {rule.organization} ({rule.role}) of directory {name}"
        reach = self.reach_of(rule)
        note: str | None = None
        if rule.removed:
            note = "the mapping was removed and the next sync revokes this"
        elif reach.root is None:
            note = "the directory has no such group now, so its memberships are kept until that is fixed"
        elif member is not None:
            same = member.directory_id == rule.directory_id and member.external_id is not None
            chain = reach.path(str(member.external_id)) if same else []
            explained["path"] = [self.group_ref(rule.directory_id, external_id) for external_id in chain]
            if chain:
                names = [step["name"] for step in explained["path"]]
                summary += ", through " + " ⊃ ".join([*names, member.label])
            else:
                note = "the directory no longer has this user in that group, and the next sync revokes this"
        return explained | {"summary": f"{summary}; {note}" if note else summary, "note": note}

    def _directory_name(self, directory_id: int) -> str:
        directory = self.directory(directory_id)
        return directory.name if directory is not None else f"#{directory_id} (deleted)"


# -- a group's and an organization's members, explained ------------------------------------------


def group_detail(session: Session, group: Group) -> dict[str, Any]:
    """A group with its members at any depth (and the nested path to each), its nesting and its mappings."""
    explainer = AccessExplainer(session)
    directory_id = group.directory_id
    directory = explainer.directory(directory_id) if directory_id is not None else None
    detail: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "directory_id": directory_id,
        "directory": directory.name if directory is not None else None,
        "external_id": group.external_id,
        "parents": [],
        "children": [],
        "grants": [],
        "members": [],
    }
    groups = explainer.groups(directory_id) if directory_id is not None else None
    entry = groups.get(group.external_id) if groups is not None and group.external_id is not None else None
    if directory_id is None or groups is None or entry is None:
        # A local group, or one the mirror does not hold: its direct members as the store has them.
        members = session.scalars(
            select(User)
            .join(GroupMembership, GroupMembership.user_id == User.id)
            .where(GroupMembership.group_id == group.id)
        )
        detail["members"] = [_member_row(user, [_local_ref(group)]) for user in members]
        return _sorted_members(detail)
    external_id = entry.group.external_id
    detail["children"] = _named(explainer, directory_id, entry.groups)
    detail["parents"] = _named(
        explainer, directory_id, {ext for ext, other in groups.items() if external_id in other.groups}
    )
    for mapping_id in session.scalars(
        select(GroupMapping.id)
        .where(GroupMapping.directory_id == directory_id, GroupMapping.removed.is_(False))
        .order_by(GroupMapping.position, GroupMapping.id)
    ):
        rule = explainer.rule(mapping_id)
        assert rule is not None
        reach = explainer.reach_of(rule)
        if external_id in reach.parent:
            chain = [external_id]
            while (up := reach.parent[chain[-1]]) is not None:
                chain.append(up)
            detail["grants"].append(
                {
                    "organization": rule.organization,
                    "role": rule.role,
                    "source_group": rule.source_group,
                    "path": [explainer.group_ref(directory_id, ext) for ext in reversed(chain)],
                }
            )
    reach = _reach(groups, external_id)
    users: dict[str, User] = {}
    held = list(reach.holder)
    for start in range(0, len(held), 500):
        for user in session.scalars(
            select(User).where(User.directory_id == directory_id, User.external_id.in_(held[start : start + 500]))
        ):
            users[str(user.external_id)] = user
    detail["members"] = [
        _member_row(user, [explainer.group_ref(directory_id, ext) for ext in reach.path(member_id)])
        for member_id, user in users.items()
    ]
    return _sorted_members(detail)


def _local_ref(group: Group) -> dict[str, Any]:
    return {"id": group.id, "name": group.name}


def _named(explainer: AccessExplainer, directory_id: int, external_ids: set[str]) -> list[dict[str, Any]]:
    refs = [explainer.group_ref(directory_id, ext) for ext in external_ids]
    return sorted(refs, key=lambda ref: (ref["name"].casefold(), ref["id"] or 0))


def _member_row(user: User, path: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "status": user.status,
        "path": path,
        "direct": len(path) == 1,
    }


def _sorted_members(detail: dict[str, Any]) -> dict[str, Any]:
    detail["members"].sort(key=lambda row: row["email"].casefold())
    return detail


def organization_sources(session: Session, organization: Organization) -> list[dict[str, Any]]:
    """What grants memberships in an organization, each with how many people it gives a role there."""
    explainer = AccessExplainer(session)
    counts = session.execute(
        select(OrganizationMembership.origin, func.count())
        .where(OrganizationMembership.organization_id == organization.id)
        .group_by(OrganizationMembership.origin)
        .order_by(OrganizationMembership.origin)
    )
    return [
        {"origin": origin, "members": count, "granted_by": explainer.granted_by(origin)} for origin, count in counts
    ]
