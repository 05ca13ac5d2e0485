"""What a directory's sync left in the store, keyed on external ids, and how two such states differ."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from accessiq.config import Settings
from accessiq.store.database import Store, open_store
from accessiq.store.tables import (
    Cursor,
    Group,
    GroupMembership,
    Organization,
    OrganizationMembership,
    Role,
    SourceObject,
    User,
)

from ..conftest import TEST_KEY

KINDS = ("users", "groups", "memberships", "org_memberships", "mirror")


@dataclass
class StoreState:
    """Users, groups, memberships, organization memberships and mirror of one directory, plus its cursor."""

    users: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    groups: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    memberships: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    org_memberships: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    mirror: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    cursor: Any = None
    # Rows that share a key with another (two users with one external id, a membership twice).
    repeated: int = 0

    def part(self, kind: str) -> dict[str, tuple[Any, ...]]:
        value: dict[str, tuple[Any, ...]] = getattr(self, kind)
        return value


def read_state(store: Store, directory_id: int) -> StoreState:
    state = StoreState()

    def put(part: dict[str, tuple[Any, ...]], key: str, value: tuple[Any, ...]) -> None:
        if key in part:
            state.repeated += 1
        part[key] = value

    with store.read() as session:
        users = session.scalars(select(User).where(User.directory_id == directory_id)).all()
        ext_of = {u.id: u.external_id for u in users}
        for u in users:
            put(
                state.users,
                str(u.external_id),
                (u.email, u.username, u.given_name, u.family_name, u.display_name, u.status, u.deactivated_by,
                 json.dumps(u.attributes, sort_keys=True)),
            )
        groups = session.scalars(select(Group).where(Group.directory_id == directory_id)).all()
        group_ext = {g.id: g.external_id for g in groups}
        for g in groups:
            put(state.groups, str(g.external_id), (g.name, g.description))
        for m in session.scalars(select(GroupMembership).where(GroupMembership.group_id.in_(group_ext))).all():
            put(state.memberships, f"{group_ext[m.group_id]}|{ext_of.get(m.user_id, m.user_id)}", ())
        slugs = dict(session.execute(select(Organization.id, Organization.slug)).all())
        roles = dict(session.execute(select(Role.id, Role.name)).all())
        for om in session.scalars(
            select(OrganizationMembership).where(OrganizationMembership.user_id.in_(ext_of))
        ).all():
            key = f"{slugs[om.organization_id]}|{ext_of[om.user_id]}|{om.origin}"
            put(state.org_memberships, key, (roles[om.role_id],))
        for row in session.scalars(select(SourceObject).where(SourceObject.directory_id == directory_id)).all():
            put(state.mirror, f"{row.kind}|{row.external_id}", (json.dumps(row.data, sort_keys=True, default=str),))
        cursor = session.get(Cursor, directory_id)
        state.cursor = None if cursor is None else (json.dumps(cursor.value, sort_keys=True), cursor.last_full_sync_at)
    return state


@dataclass
class Difference:
    """How `actual` differs from `expected`, per kind: objects lost, duplicated, or present but different."""

    lost: dict[str, int] = field(default_factory=dict)
    duplicated: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def total_duplicated(self) -> int:
        return sum(self.duplicated.values())

    @property
    def total_changed(self) -> int:
        return sum(self.changed.values())

    @property
    def none(self) -> bool:
        return not (self.total_lost or self.total_duplicated or self.total_changed)


def compare(expected: StoreState, actual: StoreState, kinds: tuple[str, ...] = KINDS) -> Difference:
    """Lost: expected and missing, or a user active there and deactivated here. Duplicated: here and not
    expected, or a key held by two rows. Changed: the same object with other values."""
    diff = Difference()
    for kind in kinds:
        want, got = expected.part(kind), actual.part(kind)
        lost = [k for k in want if k not in got]
        extra = [k for k in got if k not in want]
        changed = [k for k in want if k in got and want[k] != got[k]]
        if kind == "users":
            # A deactivation the source did not ask for is a person lost, not a changed field.
            dropped = [k for k in changed if want[k][5] == "active" and got[k][5] != "active"]
            lost += dropped
            changed = [k for k in changed if k not in dropped]
        diff.lost[kind] = len(lost)
        diff.duplicated[kind] = len(extra)
        diff.changed[kind] = len(changed)
        for label, keys in (("lost", lost), ("duplicated", extra), ("changed", changed)):
            diff.examples += [f"{kind} {label}: {k} expected {want.get(k)} got {got.get(k)}" for k in keys[:3]]
    diff.duplicated["repeated rows"] = max(0, actual.repeated - expected.repeated)
    return diff


def copy_store(store: Store, data_dir: Path) -> Store:
    """A second store holding a copy of `store`'s SQLite database as it is now."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source_path = store.engine.url.database
    assert source_path, "copy_store needs a SQLite file store"
    source = sqlite3.connect(source_path)
    target = sqlite3.connect(data_dir / "accessiq.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return open_store(Settings(data_dir=data_dir, secret_key=TEST_KEY))
