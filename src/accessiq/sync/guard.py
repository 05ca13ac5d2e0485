"""The safety guard: stop a run before it removes people because a read or a setting went wrong.

Pure functions: the engine gathers the facts (the read against the mirror of the last applied
run, the store's counts, what changed in the settings) and `check_safety` says why the plan must
wait for an administrator, or None. A run is held when

- the source returned no users, or collapsed to a tenth of what the last applied run read (a
  directory's users or groups, or one group's members): a provider answering 200 with part of
  the data looks like this, and must not read as everyone leaving;
- the connection, the user filter, the group mappings or the deactivation setting changed since
  the last applied run and the plan deactivates anyone or deletes a group, whatever the
  thresholds: a new credential or filter can make the same directory read differently;
- a plan exceeds a threshold of `Safety`: user deactivations, group deletions, or members
  removed from one group, each as a count and as a percentage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from accessiq.sync.planner import Plan, membership_of
from accessiq.sync.settings import PERCENT_FLOOR, Safety
from accessiq.sync.source import MirrorGroup

# A read is suspicious when it keeps at most this share of what was there (10%: a 90% drop).
COLLAPSE_KEEPS = 0.10
_NEXT = "review the changes, then approve the run if they are right or reject it"
# How far back the guard looks for the deactivations of earlier pushes (see ReadFacts.earlier_pushed).
PUSH_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Shrunk:
    """A group whose direct members fell from `before` to `after` between two reads."""

    name: str
    before: int
    after: int


@dataclass(frozen=True)
class ReadFacts:
    """What a plan is judged against besides itself."""

    source_users: int  # users of the complete source after the read
    active: int  # this directory's active synced users in the store
    mirrored_users: int = 0  # users of the source as the last applied run read it
    source_groups: int = 0
    mirrored_groups: int = 0
    stored_groups: int = 0  # this directory's groups in the store
    shrunk: tuple[Shrunk, ...] = ()
    # Stored direct members of each group the plan removes members from, by external id.
    group_sizes: Mapping[str, int] = field(default_factory=dict)
    # Guarded settings that changed since the last applied run, in words ("connection.base_dn").
    changed: tuple[str, ...] = ()
    # For a push: the users that pushes deactivated within PUSH_WINDOW (since the last approval).
    # A SCIM client deletes one user per request, so the thresholds hold for the burst, not for
    # each request; and a push names what it removes, so a smaller source is no sign of a bad read.
    earlier_pushed: int | None = None


def collapsed(before: int, after: int) -> bool:
    """Whether a count fell by 90% or more from one big enough to tell."""
    return before >= PERCENT_FLOOR and after <= before * COLLAPSE_KEEPS


def shrunk_groups(now: Mapping[str, MirrorGroup], before: Mapping[str, MirrorGroup]) -> tuple[Shrunk, ...]:
    """Groups still in the source whose direct members (users and groups) collapsed since `before`."""
    found = []
    for external_id, old in before.items():
        new = now.get(external_id)
        if new is None:
            continue  # a deleted group is a group deletion, held by its own threshold
        was, is_now = len(old.users) + len(old.groups), len(new.users) + len(new.groups)
        if collapsed(was, is_now):
            found.append(Shrunk(new.group.name, was, is_now))
    return tuple(sorted(found, key=lambda s: (s.name, s.before)))


def check_safety(plan: Plan, facts: ReadFacts, safety: Safety) -> str | None:
    """Why this plan must wait for an administrator (what happened and what to do), or None."""
    # A changed setting first: when it explains a suspicious read, it is what the admin must look at.
    pushed = facts.earlier_pushed is not None
    suspicious = None if pushed else _suspicious_read(facts)
    for reason in (_changed_settings(plan, facts), suspicious, _thresholds(plan, facts, safety)):
        if reason:
            return reason
    return None


def _suspicious_read(facts: ReadFacts) -> str | None:
    if not facts.source_users and facts.active:
        return (
            f"the directory returned no users, but {facts.active} synced users are active here; check the "
            "directory and the connection, and approve the run only if the directory really is empty"
        )
    if facts.active and collapsed(facts.mirrored_users, facts.source_users):
        return (
            f"the directory returned {facts.source_users} users, {_drop(facts.mirrored_users, facts.source_users)} "
            f"fewer than the {facts.mirrored_users} of the last applied sync; a read that returns so much less is "
            "held like an empty one: check the directory and the connection, and approve the run only if "
            "the directory really shrank"
        )
    if collapsed(facts.mirrored_groups, facts.source_groups):
        return (
            f"the directory returned {facts.source_groups} groups, {_drop(facts.mirrored_groups, facts.source_groups)} "
            f"fewer than the {facts.mirrored_groups} of the last applied sync; check the directory and the "
            "connection, and approve the run only if those groups really are gone"
        )
    if facts.shrunk:
        listed = ", ".join(
            f"{s.name} ({s.before} -> {s.after}, {_drop(s.before, s.after)} fewer)" for s in facts.shrunk[:5]
        )
        more = f" and {len(facts.shrunk) - 5} more" if len(facts.shrunk) > 5 else ""
        return (
            f"groups lost 90% or more of their members since the last applied sync: {listed}{more}; a "
            "provider that answers with part of a group looks like this: check those groups in the "
            "directory, and approve the run only if their members really left"
        )
    return None


def _changed_settings(plan: Plan, facts: ReadFacts) -> str | None:
    if not facts.changed:
        return None
    removals = _removals(plan)
    if not removals:
        return None
    return (
        f"{', '.join(facts.changed)} changed since the last applied sync, and this run would {removals}; "
        "a new credential, base DN, filter or mapping can make the same directory read differently, so "
        "this waits for an administrator whatever the thresholds: review the changes, then approve the "
        "run if they are right, or reject it and restore the previous setting"
    )


def _removals(plan: Plan) -> str:
    deactivations, deletions = len(plan.of("user", "deactivate")), len(plan.of("group", "delete"))
    parts = [f"deactivate {_count(deactivations, 'user')}"] if deactivations else []
    parts += [f"delete {_count(deletions, 'group')}"] if deletions else []
    return " and ".join(parts)


def _thresholds(plan: Plan, facts: ReadFacts, safety: Safety) -> str | None:
    pushed = facts.earlier_pushed or 0
    deactivations, active = len(plan.of("user", "deactivate")) + pushed, facts.active + pushed
    what = "with the pushes of the last hour, the run would" if pushed else "the run would"
    if deactivations > safety.max_deactivations:
        return (
            f"{what} deactivate {deactivations} users, more than safety.max_deactivations "
            f"({safety.max_deactivations}); {_NEXT}"
        )
    if active and deactivations * 100 > safety.max_deactivation_percent * active:
        return (
            f"{what} deactivate {deactivations} of {active} active users "
            f"({deactivations * 100 / active:.0f}%), more than safety.max_deactivation_percent "
            f"({safety.max_deactivation_percent:g}%); {_NEXT}"
        )
    deletions, groups = len(plan.of("group", "delete")), facts.stored_groups
    if deletions > safety.max_group_deletions:
        return (
            f"the run would delete {deletions} groups, more than safety.max_group_deletions "
            f"({safety.max_group_deletions}); {_NEXT}"
        )
    if groups >= PERCENT_FLOOR and deletions * 100 > safety.max_group_deletion_percent * groups:
        return (
            f"the run would delete {deletions} of {groups} groups ({deletions * 100 / groups:.0f}%), more "
            f"than safety.max_group_deletion_percent ({safety.max_group_deletion_percent:g}%); {_NEXT}"
        )
    return _membership_thresholds(plan, facts, safety)


def _membership_thresholds(plan: Plan, facts: ReadFacts, safety: Safety) -> str | None:
    removed: Counter[str] = Counter()
    names: dict[str, str] = {}
    for op in plan.of("group_membership", "remove"):
        membership = membership_of(op)
        group_id = str(membership.group_id)
        removed[group_id] += 1
        names[group_id] = str(membership.group or group_id)
    for group_id, count in sorted(removed.items()):
        size, name = facts.group_sizes.get(group_id, 0), names[group_id]
        if count > safety.max_membership_removals:
            return (
                f"the run would remove {count} members from group {name}, more than "
                f"safety.max_membership_removals ({safety.max_membership_removals}); {_NEXT}"
            )
        if size >= PERCENT_FLOOR and count * 100 > safety.max_membership_removal_percent * size:
            return (
                f"the run would remove {count} of the {size} members of group {name} ({count * 100 / size:.0f}%), "
                f"more than safety.max_membership_removal_percent ({safety.max_membership_removal_percent:g}%); "
                f"{_NEXT}"
            )
    return None


def _drop(before: int, after: int) -> str:
    return f"{(before - after) * 100 / before:.0f}%"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
