"""Which users a run must plan, from what changed since the last applied run.

Pure functions over the source and what the store says changed; nothing here reads a database.
A run plans everything when the basis of the last applied plan no longer holds (settings, group
mappings, connection, how group references resolve, or the store changed outside the sync);
otherwise it plans the users that changed, the users whose groups changed (the old and the new
members of each changed group, nested ones included, which covers every ancestor's changed
membership), the users the last run could not bring in line (errors, retained users) and the
users an administrator touched since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from accessiq.connectors.base import ConnectionSettings
from accessiq.store.crypto import SecretBox
from accessiq.sync.planner import PlanContext
from accessiq.sync.scope import resolve_group_ref, transitive_users
from accessiq.sync.source import MirrorGroup, MirrorKey, SourceSnapshot

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def row_hash(data: Mapping[str, Any]) -> str:
    """The digest of one mirror row; equal rows give equal digests on every backend."""
    try:
        text = orjson.dumps(data, option=_SORTED, default=str)
    except orjson.JSONEncodeError:  # integers beyond 64 bits: the standard encoder writes them
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return hashlib.sha256(text).hexdigest()[:32]


def config_digest(provider: str, connection: Mapping[str, Any], context: PlanContext) -> str:
    """Everything a plan depends on besides the source and the store: a change plans everything.

    Credentials are left out: they change who reads, not what is read, and each record's own
    digest tells what the read returned.
    """
    parts = {
        "provider": provider,
        "connection": connection,
        "settings": context.settings.model_dump(mode="json"),
        "mappings": [[r.id, r.source_group, r.organization_id, r.role_id, r.removed] for r in context.group_mappings],
        "default_organization": context.default_organization,
        "default_role": context.default_role,
    }
    return row_hash(parts)


def connection_digests(connection: ConnectionSettings, box: SecretBox) -> dict[str, str]:
    """`connection.FIELD` -> a digest of its value as a run reads with it; secrets keyed by the master key."""
    values = connection.model_dump(mode="json")
    return {
        f"connection.{name}": box.fingerprint(value) if name in connection.secret_fields else row_hash({"v": value})
        for name, value in sorted(values.items())
    }


def guard_digests(connection: Mapping[str, str], context: PlanContext) -> dict[str, str]:
    """What the guard holds a run for when it changed: connection fields, user filter, group
    mappings and the deactivation setting, each as a digest under its name."""
    live = sorted(
        [rule.source_group.strip().casefold(), rule.organization_id, rule.role_id]
        for rule in context.group_mappings
        if not rule.removed
    )
    settings = context.settings
    return {
        **connection,
        "settings.user_filter": row_hash(settings.user_filter.model_dump(mode="json")),
        "settings.deactivation": row_hash({"v": settings.deactivation}),
        "group_mappings": row_hash({"v": live}),
    }


def guard_changes(before: Mapping[str, str] | None, now: Mapping[str, str]) -> tuple[str, ...]:
    """The guarded settings whose digest moved; none when the last applied run left no digests
    (the first run of a directory, or the first after the upgrade that added them)."""
    if not before:
        return ()
    return tuple(sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name)))


def resolved_refs(groups: Mapping[str, MirrorGroup], context: PlanContext) -> dict[str, str | None]:
    """Every group reference of the settings and mappings -> the group it names now (or None)."""
    refs = [*context.settings.user_filter.groups, *(r.source_group for r in context.group_mappings if not r.removed)]
    return {ref: resolve_group_ref(ref, groups, context.pins)[0] for ref in sorted(set(refs))}


@dataclass(frozen=True)
class MirrorDiff:
    """Mirror rows to write (new or changed) and keys to delete, with the keys that changed."""

    upserts: list[tuple[str, str, dict[str, Any]]]
    deletes: list[tuple[str, str]]
    # The digest of each upserted row, and the upserted keys that have a stored row to replace.
    digests: dict[MirrorKey, str] = field(default_factory=dict)
    replaced: list[MirrorKey] = field(default_factory=list)

    def changed(self, kind: str) -> set[str]:
        return {ext for k, ext, _ in self.upserts if k == kind} | {ext for k, ext in self.deletes if k == kind}


def diff_rows(
    stored: Mapping[MirrorKey, str | None], rows: Mapping[MirrorKey, dict[str, Any]], keep: set[MirrorKey]
) -> MirrorDiff:
    """Compare each incoming row's digest with the stored one; `keep` rows are left alone."""
    digests = {key: row_hash(data) for key, data in rows.items() if key not in keep}
    upserts = sorted(
        ((kind, ext, rows[kind, ext]) for (kind, ext), digest in digests.items() if stored.get((kind, ext)) != digest),
        key=lambda row: (row[0], row[1]),
    )
    deletes = [key for key in stored if key not in rows and key not in keep]
    return MirrorDiff(
        upserts,
        sorted(deletes),
        {(kind, ext): digests[kind, ext] for kind, ext, _ in upserts},
        [(kind, ext) for kind, ext, _ in upserts if (kind, ext) in stored],
    )


def old_groups(
    groups: Mapping[str, MirrorGroup], changed: Iterable[str], before: Mapping[str, dict[str, Any]]
) -> dict[str, MirrorGroup]:
    """The group graph as of the last applied run: today's, with the changed groups as they were."""
    old = dict(groups)
    for external_id in changed:
        row = before.get(external_id)
        if row is None:
            old.pop(external_id, None)
        else:
            old[external_id] = SourceSnapshot.from_mirror({("group", external_id): row}).groups[external_id]
    return old


def affected_users(
    changed_users: set[str],
    changed_groups: set[str],
    groups_now: Mapping[str, MirrorGroup],
    groups_before: Mapping[str, MirrorGroup],
    also: Iterable[str] = (),
) -> set[str]:
    """Users to plan: the changed ones, `also`, and every user whose groups (direct or nested)
    a group change can have changed.

    Each membership edge belongs to one group's record, so a user's set of groups, at any depth,
    changes only through an edge that changed: a user added to or removed from a group, or a
    group added to or removed from one, which reaches every user below it as it was and as it
    is. A new or removed group reaches all its members; a renamed one its direct members
    (`memberOf` lists the names of a user's groups).
    """
    users = set(changed_users) | set(also)
    for external_id in changed_groups:
        now, before = groups_now.get(external_id), groups_before.get(external_id)
        if now is None or before is None:
            users |= transitive_users(external_id, groups_now) | transitive_users(external_id, groups_before)
            continue
        if now.group != before.group:
            users |= now.users | before.users
        users |= now.users ^ before.users
        for child in now.groups ^ before.groups:
            users |= transitive_users(child, groups_now) | transitive_users(child, groups_before)
    return users


def restrict(snapshot: SourceSnapshot, users: set[str]) -> SourceSnapshot:
    """The snapshot with only `users` (every group stays: scope and nesting need them all)."""
    return SourceSnapshot(
        users={ext: snapshot.users[ext] for ext in users if ext in snapshot.users},
        groups=snapshot.groups,
        rejected=snapshot.rejected,
        full=snapshot.full,
        complete=snapshot.complete,
        cursor=snapshot.cursor,
        notes=snapshot.notes,
    )
