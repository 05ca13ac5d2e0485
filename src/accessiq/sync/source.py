"""The source as the engine sees it: the stored mirror with a read's events folded in."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from accessiq.connectors.base import (
    GroupRemoved,
    GroupUpserted,
    ReadFinished,
    ReadStarted,
    RecordRejected,
    SourceEvent,
    SourceGroup,
    SourceUser,
    UserRemoved,
    UserUpserted,
)
from accessiq.sync.records import checked


@dataclass
class MirrorGroup:
    """A source group with its direct members, users and groups apart."""

    group: SourceGroup
    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)


MirrorKey = tuple[str, str]  # (kind, external id)


@dataclass
class SourceSnapshot:
    """Every source user and group after a read, plus what the read said about itself."""

    users: dict[str, SourceUser] = field(default_factory=dict)
    groups: dict[str, MirrorGroup] = field(default_factory=dict)
    # Records the connector could not understand: (object, external id, message).
    rejected: list[tuple[str, str | None, str]] = field(default_factory=list)
    full: bool = False
    complete: bool = False
    cursor: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    # An incremental read over a mirror whose users were not loaded: `users` holds the users the
    # read upserted, `removed_users` those it removed; every other mirrored user is as it was.
    users_partial: bool = False
    removed_users: set[str] = field(default_factory=set)
    # The groups the read upserted or removed, or took a removed member out of: after an
    # incremental read, every other group is as mirrored.
    groups_read: set[str] = field(default_factory=set)

    @property
    def rejected_users(self) -> set[str]:
        return {ext for obj, ext, _ in self.rejected if obj == "user" and ext}

    @property
    def rejected_groups(self) -> set[str]:
        return {ext for obj, ext, _ in self.rejected if obj == "group" and ext}

    @classmethod
    def from_mirror(cls, rows: dict[MirrorKey, dict[str, Any]]) -> SourceSnapshot:
        snapshot = cls()
        for (kind, external_id), data in rows.items():
            if kind == "user":
                snapshot.users[external_id] = user_from_row(external_id, data)
            else:
                snapshot.groups[external_id] = MirrorGroup(
                    SourceGroup(
                        external_id=external_id,
                        name=data["name"],
                        description=data.get("description"),
                        email=data.get("email"),
                        dn=data.get("dn"),
                        data=data.get("data"),
                    ),
                    users=set(data.get("users", [])),
                    groups=set(data.get("groups", [])),
                )
        return snapshot

    def fold(self, events: Iterable[SourceEvent]) -> Iterator[SourceEvent]:
        """Apply a read's events one by one, passing each on (for progress reporting); a record
        past the limits of `records` becomes an error on that record."""
        for event in events:
            event = checked(event)
            self._apply(event)
            yield event

    def _apply(self, event: SourceEvent) -> None:
        if isinstance(event, UserUpserted):
            self.users[event.user.external_id] = event.user
            self.removed_users.discard(event.user.external_id)
        elif isinstance(event, GroupUpserted):
            self._upsert_group(event)
        elif isinstance(event, UserRemoved):
            self.users.pop(event.external_id, None)
            self.removed_users.add(event.external_id)
            for group_id, entry in self.groups.items():
                if event.external_id in entry.users:
                    entry.users.discard(event.external_id)
                    self.groups_read.add(group_id)
        elif isinstance(event, GroupRemoved):
            self.groups.pop(event.external_id, None)
            self.groups_read.add(event.external_id)
            for group_id, entry in self.groups.items():
                if event.external_id in entry.groups:
                    entry.groups.discard(event.external_id)
                    self.groups_read.add(group_id)
        elif isinstance(event, RecordRejected):
            self.rejected.append((event.object, event.external_id, event.message))
        elif isinstance(event, ReadStarted):
            self.full = event.full
            if event.full:
                # A full read, or one that starts over: nothing read before it counts.
                self.users.clear()
                self.groups.clear()
                self.removed_users.clear()
                self.groups_read.clear()
                self.rejected.clear()
                self.users_partial = False
            if event.note:
                self.notes.append(event.note)
        elif isinstance(event, ReadFinished):
            self.cursor = event.cursor
            self.complete = True

    def _upsert_group(self, event: GroupUpserted) -> None:
        group_id = event.group.external_id
        self.groups_read.add(group_id)
        entry = self.groups.get(group_id)
        if entry is None or event.replace_members:
            entry = MirrorGroup(event.group)
            self.groups[group_id] = entry
        else:
            entry.group = event.group
        # Removals first, then additions: replays of one page are idempotent either way.
        entry.users -= event.removed_users
        entry.groups -= event.removed_groups
        entry.users |= event.added_users
        entry.groups |= event.added_groups

    def to_rows(self, groups: Collection[str] | None = None) -> dict[MirrorKey, dict[str, Any]]:
        """The mirror rows of the users and of the groups (or of just `groups`)."""
        rows: dict[MirrorKey, dict[str, Any]] = {}
        for external_id, user in self.users.items():
            rows[("user", external_id)] = {
                "data": user.data,
                "active": user.active,
                "org_unit": user.org_unit,
            }
        for external_id, entry in self.groups.items():
            if groups is not None and external_id not in groups:
                continue
            group = entry.group
            row: dict[str, Any] = {
                "name": group.name,
                "description": group.description,
                "email": group.email,
                "dn": group.dn,
                "users": sorted(entry.users),
                "groups": sorted(entry.groups),
            }
            if group.data is not None:
                row["data"] = dict(group.data)
            rows[("group", external_id)] = row
        return rows


def user_from_row(external_id: str, data: dict[str, Any]) -> SourceUser:
    """A source user from its mirror row."""
    return SourceUser(external_id=external_id, data=data["data"], active=data["active"], org_unit=data.get("org_unit"))
