"""The planner: a pure, deterministic function from (source, store, settings) to operations.

Nothing here reads a database or a network. `plan_sync` scopes, maps, validates
and matches the source users, then diffs what the directory should look like in
AccessIQ against what the store holds, and says so as an ordered list of
operations that each describe themselves in one sentence.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from accessiq.connectors.base import SourceUser
from accessiq.sync.emails import email_problem
from accessiq.sync.mapping import CORE_FIELDS, CompiledMapping, Condition, MappingError
from accessiq.sync.scope import in_org_units, resolve_group_ref, transitive_users
from accessiq.sync.settings import SyncSettings
from accessiq.sync.source import SourceSnapshot

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# The longest value each core field takes (the users table's columns).
FIELD_LIMITS = {"email": 320, "username": 320, "given_name": 200, "family_name": 200, "display_name": 400}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _field_problem(fields: Mapping[str, str | None]) -> str | None:
    """Why a user's mapped core fields cannot be stored: too long, or holding control characters."""
    # One search of all the values first: nearly always there is no control character at all.
    controls = _CONTROL.search("".join(value for value in fields.values() if value)) is not None
    for name, value in fields.items():
        limit = FIELD_LIMITS[name]
        if value is None:
            continue
        if len(value) > limit:
            return f"{name} is {len(value)} characters long, more than {limit}"
        control = _CONTROL.search(value) if controls else None
        if control:
            return f"{name} holds a control character ({control.group()!r})"
    return None


# --- what the store holds (loaded by the store layer, passed in) -------------------------


@dataclass(frozen=True)
class StoredUser:
    id: int
    email: str
    username: str | None
    given_name: str | None
    family_name: str | None
    display_name: str | None
    status: str
    deactivated_by: str | None
    attributes: Mapping[str, Any]
    directory_id: int | None
    external_id: str | None


@dataclass(frozen=True)
class StoredGroup:
    id: int
    external_id: str
    name: str
    description: str | None


OrgKey = tuple[int, str, str]  # (organization id, user external id, origin)


@dataclass
class StoreState:
    """The part of the store one directory's sync may change, plus the email index for matching."""

    users: dict[str, StoredUser] = field(default_factory=dict)  # this directory's, by external id
    emails: dict[str, StoredUser] = field(default_factory=dict)  # every user, by lowered email
    groups: dict[str, StoredGroup] = field(default_factory=dict)
    group_members: set[tuple[str, str]] = field(default_factory=set)  # (group ext id, user ext id)
    org_memberships: dict[OrgKey, int] = field(default_factory=dict)  # owned origins only -> role id


# --- what the settings resolve to --------------------------------------------------------


@dataclass(frozen=True)
class MappingRule:
    """A group mapping with its organization and role resolved to ids."""

    id: int
    source_group: str
    organization_id: int
    organization: str
    role_id: int
    role: str
    removed: bool = False

    @property
    def origin(self) -> str:
        return f"group-mapping:{self.id}"


@dataclass(frozen=True)
class PlanContext:
    directory_id: int
    settings: SyncSettings
    mapping: CompiledMapping
    group_mappings: tuple[MappingRule, ...] = ()
    default_organization: tuple[int, str] | None = None  # (id, slug)
    default_role: tuple[int, str] = (0, "member")  # (id, name)
    pins: Mapping[str, str] = field(default_factory=dict)
    organizations: Mapping[int, str] = field(default_factory=dict)  # id -> slug, for labels
    roles: Mapping[int, str] = field(default_factory=dict)  # id -> name, for labels
    directories: Mapping[int, str] = field(default_factory=dict)  # id -> name, for messages

    @property
    def default_origin(self) -> str:
        return f"directory-default:{self.directory_id}"


# --- the plan ----------------------------------------------------------------------------


class Operation(NamedTuple):
    """One change of a plan. A tuple: a first sync makes hundreds of thousands of them."""

    object: str  # user | group | group_membership | org_membership
    action: str
    external_id: str | None
    label: str
    detail: Mapping[str, Any] = {}  # never mutated; each operation that has one passes its own

    def describe(self) -> str:
        """One sentence, for logs and the CLI."""
        if self.action == "update" or self.action == "link":
            changes = ", ".join(
                f"{name} {before!r} -> {after!r}" for name, (before, after) in self.detail["changes"].items()
            )
            verb = "link and update" if self.action == "link" else "update"
            return f"{verb} {self.object} {self.label}" + (f": {changes}" if changes else "")
        if self.object == "org_membership":
            d = self.detail
            if self.action == "change":
                return (
                    f"change {d['user']}'s role in {d['organization']} from {d['role_before']} "
                    f"to {d['role']} ({d['origin']})"
                )
            return f"{self.action} {d['user']} {d['role']} in {d['organization']} ({d['origin']})"
        if self.object == "group_membership":
            preposition = "to" if self.action == "add" else "from"
            return f"{self.action} {self.detail['user']} {preposition} group {self.detail['group']}"
        return f"{self.action} {self.object} {self.label}"


class MembershipDetail(Mapping[str, Any]):
    """The detail of a group membership change, `{"key": [group, user], "group": name, "user":
    email}`, in a quarter of a dict's memory: a first sync makes one per membership."""

    __slots__ = ("group", "group_id", "user", "user_id")
    _KEYS = ("key", "group", "user")

    def __init__(self, group_id: str, user_id: str, group: str, user: str) -> None:
        self.group_id, self.user_id, self.group, self.user = group_id, user_id, group, user

    def __getitem__(self, name: str) -> Any:
        if name == "key":
            return [self.group_id, self.user_id]
        if name == "group":
            return self.group
        if name == "user":
            return self.user
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return 3

    def __repr__(self) -> str:
        return repr(dict(self))


def membership_label(user: str, group: str) -> str:
    """How a group membership change is labelled: "email / group"."""
    return f"{user} / {group}"


def membership_of(op: Operation) -> MembershipDetail:
    """The detail of a group membership change as attributes (a stored plan's is a dict)."""
    detail = op.detail
    if type(detail) is MembershipDetail:
        return detail
    group_id, user_id = detail["key"]
    return MembershipDetail(group_id, user_id, detail["group"], detail["user"])


@dataclass(frozen=True)
class Issue:
    """A per-object error: the object is left as it is, the run goes on."""

    object: str
    external_id: str | None
    message: str


@dataclass
class Plan:
    operations: list[Operation] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    # Users that left the directory or its scope and stay as they are (deactivation: ignore).
    retained: list[str] = field(default_factory=list)
    # Group references resolved for the first time in this run: reference -> external id.
    pins: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # Every planned source user in scope whose mapping gave an email -> that email, lowered
    # (duplicates included): kept in the mirror so later runs find users sharing an email.
    emails: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    # The operations of each (object, action), made once per list of operations.
    _steps: tuple[list[Operation], dict[tuple[str, str], list[Operation]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def empty(self) -> bool:
        return not self.operations

    def of(self, obj: str, action: str) -> list[Operation]:
        return list(self._by_step().get((obj, action), ()))

    def _by_step(self) -> dict[tuple[str, str], list[Operation]]:
        if self._steps is None or self._steps[0] is not self.operations:
            steps: dict[tuple[str, str], list[Operation]] = defaultdict(list)
            for op in self.operations:
                steps[op[0], op[1]].append(op)
            self._steps = (self.operations, steps)
        return self._steps[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "operations": [{**op._asdict(), "detail": dict(op.detail)} for op in self.operations],
            "errors": [asdict(issue) for issue in self.errors],
            "retained": self.retained,
            "pins": self.pins,
            "counts": self.counts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            operations=[Operation(**op) for op in data["operations"]],
            errors=[Issue(**issue) for issue in data["errors"]],
            retained=list(data["retained"]),
            pins=dict(data["pins"]),
            counts=dict(data["counts"]),
        )


# The order operations are applied and listed in; within a step, by key.
STEPS: tuple[tuple[str, str], ...] = (
    ("group", "create"),
    ("group", "update"),
    ("user", "create"),
    ("user", "link"),
    ("user", "update"),
    ("user", "reactivate"),
    ("group_membership", "add"),
    ("group_membership", "remove"),
    ("org_membership", "grant"),
    ("org_membership", "change"),
    ("org_membership", "revoke"),
    ("user", "deactivate"),
    ("group", "delete"),
)
_STEP_INDEX = {step: index for index, step in enumerate(STEPS)}

USER_FIELDS = CORE_FIELDS


@dataclass(frozen=True)
class DesiredUser:
    external_id: str
    fields: dict[str, str | None]  # the core fields
    attributes: dict[str, Any]
    active: bool

    @property
    def email(self) -> str:
        return self.fields["email"] or ""


def plan_sync(source: SourceSnapshot, current: StoreState, context: PlanContext) -> Plan:
    """Everything one sync of this directory should change, in apply order.

    Only the users in `source.users` are planned (with every group of the source for scope and
    nesting); `current` needs those users, their memberships and the owners of their emails.
    """
    return _Planner(source, current, context).run()


def desired_emails(source: SourceSnapshot, context: PlanContext) -> dict[str, str]:
    """The lowered email each source user in scope maps to (what `Plan.emails` will hold)."""
    planner = _Planner(source, StoreState(), context)
    planner.frozen_users |= source.rejected_users
    desired, _ = planner._scope_and_map(*planner._resolve_filter_groups())
    return {external_id: user.email.casefold() for external_id, user in desired.items()}


class _Planner:
    def __init__(self, source: SourceSnapshot, current: StoreState, context: PlanContext) -> None:
        self.source = source
        self.current = current
        self.context = context
        self.settings = context.settings
        self.plan = Plan()
        self.ops: list[Operation] = []
        # Users whose store state this run must not touch at all (errors, ignore, unsure scope).
        self.frozen_users: set[str] = set()
        self.frozen_groups: set[str] = set(source.rejected_groups)
        self.retained_origins: set[str] = set()
        # Steps whose operations were made in apply order already.
        self.in_order: set[tuple[str, str]] = set()

    def error(self, obj: str, external_id: str | None, message: str) -> None:
        self.plan.errors.append(Issue(obj, external_id, message))

    def run(self) -> Plan:
        for obj, external_id, message in self.source.rejected:
            self.error(obj, external_id, message)
        self.frozen_users |= self.source.rejected_users
        filter_groups, scope_certain = self._resolve_filter_groups()
        mapping_groups = self._resolve_mappings()
        desired, leaving = self._scope_and_map(filter_groups, scope_certain)
        self.plan.emails = {external_id: user.email.casefold() for external_id, user in desired.items()}
        self._check_duplicate_emails(desired)
        targets = self._plan_users(desired, leaving)
        self._plan_groups()
        self._plan_group_memberships(targets)
        self._plan_org_memberships(targets, mapping_groups)
        self.plan.operations = _in_order(self.ops, self.in_order)
        self.plan.errors.sort(key=lambda issue: (issue.object, issue.external_id or "", issue.message))
        self.plan.retained.sort()
        self._count(desired)
        return self.plan

    # -- references ---------------------------------------------------------------------

    def _resolve(self, ref: str) -> tuple[str | None, str | None]:
        external_id, problem = resolve_group_ref(ref, self.source.groups, self.context.pins)
        if external_id is not None and ref not in self.context.pins:
            self.plan.pins[ref] = external_id
        return external_id, problem

    def _resolve_filter_groups(self) -> tuple[list[str], bool]:
        resolved, certain = [], True
        for ref in self.settings.user_filter.groups:
            external_id, problem = self._resolve(ref)
            if external_id is None:
                certain = False
                self.error(
                    "user_filter",
                    None,
                    f"user_filter.groups {ref!r}: {problem}; users outside "
                    "the other filter groups are left as they are until this is fixed",
                )
            else:
                resolved.append(external_id)
        return resolved, certain

    def _resolve_mappings(self) -> dict[int, str | None]:
        """mapping id -> source group external id; None when the mapping cannot apply this run."""
        resolved: dict[int, str | None] = {}
        for rule in self.context.group_mappings:
            if rule.removed:
                resolved[rule.id] = None
                continue
            external_id, problem = self._resolve(rule.source_group)
            resolved[rule.id] = external_id
            if external_id is None:
                label = f"group mapping {rule.source_group!r} -> {rule.organization} ({rule.role})"
                if rule.source_group in self.context.pins:
                    # The pinned group is gone: its members no longer hold the role.
                    self.error("group_mapping", None, f"{label}: {problem}; its memberships are revoked")
                else:
                    self.retained_origins.add(rule.origin)
                    self.error(
                        "group_mapping",
                        None,
                        f"{label}: {problem}; its memberships are kept as they are until this is fixed",
                    )
        return resolved

    # -- users --------------------------------------------------------------------------

    def _scope_and_map(self, filter_groups: list[str], scope_certain: bool) -> tuple[dict[str, DesiredUser], set[str]]:
        user_filter = self.settings.user_filter
        allowed: set[str] | None = None
        if user_filter.groups:
            allowed = set()
            for group_id in filter_groups:
                allowed |= transitive_users(group_id, self.source.groups)
        condition = Condition(user_filter.condition) if user_filter.condition else None
        member_of = self._member_of() if self._needs_member_of() else None

        desired: dict[str, DesiredUser] = {}
        leaving: set[str] = set()
        for external_id in sorted(self.source.users):
            if external_id in self.frozen_users:
                continue
            user = self.source.users[external_id]
            record = self._record(user, member_of)
            in_scope = (allowed is None or external_id in allowed) and (
                not user_filter.org_units or in_org_units(user.org_unit, user_filter.org_units)
            )
            try:
                in_scope = in_scope and (condition is None or condition(record))
            except MappingError as exc:
                self._freeze_user(external_id, str(exc))
                continue
            if not in_scope:
                if scope_certain:
                    leaving.add(external_id)
                else:
                    self.frozen_users.add(external_id)
                continue
            mapped = self._map(user, record)
            if mapped is not None:
                desired[external_id] = mapped
        return desired, leaving

    def _needs_member_of(self) -> bool:
        return any("memberOf" in source for source in self.context.mapping.sources) or (
            "memberOf" in (self.settings.user_filter.condition or "")
        )

    def _member_of(self) -> dict[str, list[str]]:
        names: dict[str, list[str]] = defaultdict(list)
        planned = self.source.users.keys()
        for entry in self.source.groups.values():
            for user_id in entry.users & planned:
                names[user_id].append(entry.group.name)
        return {user_id: sorted(groups) for user_id, groups in names.items()}

    @staticmethod
    def _record(user: SourceUser, member_of: Mapping[str, list[str]] | None) -> Mapping[str, Any]:
        if member_of is None or "memberOf" in user.data:
            return user.data
        return {**user.data, "memberOf": member_of.get(user.external_id, [])}

    def _freeze_user(self, external_id: str, message: str) -> None:
        self.frozen_users.add(external_id)
        self.error("user", external_id, message)

    def _map(self, user: SourceUser, record: Mapping[str, Any]) -> DesiredUser | None:
        try:
            values = self.context.mapping.apply(record)
        except MappingError as exc:
            self._freeze_user(user.external_id, str(exc))
            return None
        fields: dict[str, str | None] = {}
        for name in USER_FIELDS:
            value = values.pop(name, None)
            if isinstance(value, list):
                value = value[0] if value else None
            fields[name] = None if value is None or value == "" else str(value).strip()
        email = fields["email"]
        if not email:
            self._freeze_user(user.external_id, "no email: the mapping for email gave nothing")
            return None
        if not _EMAIL.match(email):
            self._freeze_user(user.external_id, f"email {email!r} is not a valid address")
            return None
        problem = email_problem(email) or _field_problem(fields)
        if problem:
            self._freeze_user(user.external_id, problem)
            return None
        attributes = {name: value for name, value in values.items() if value is not None}
        return DesiredUser(user.external_id, fields, attributes, user.active)

    def _check_duplicate_emails(self, desired: dict[str, DesiredUser]) -> None:
        by_email: dict[str, list[str]] = defaultdict(list)
        for external_id, user in desired.items():
            by_email[user.email.casefold()].append(external_id)
        for email, owners in by_email.items():
            if len(owners) > 1:
                for external_id in owners:
                    others = ", ".join(o for o in owners if o != external_id)
                    self._freeze_user(
                        external_id,
                        f"email {email} is also used by source user(s) {others}; neither is created or changed",
                    )
                    del desired[external_id]

    def _plan_users(self, desired: dict[str, DesiredUser], leaving: set[str]) -> set[str]:
        """Plan user operations; return the external ids that end up active members of the directory."""
        current = self.current
        deactivate = self.settings.deactivation == "deactivate"
        targets: set[str] = set()
        for external_id, wanted in desired.items():
            stored = current.users.get(external_id)
            if not wanted.active:
                if stored is not None:
                    self._leave(stored, "disabled in the directory", deactivate)
                continue
            if stored is None:
                stored_owner = current.emails.get(wanted.email.casefold())
                if stored_owner is None:
                    self._create_user(wanted)
                elif stored_owner.directory_id is None and self.settings.link_existing_users == "by_email":
                    self._link_user(stored_owner, wanted)
                else:
                    self._freeze_user(external_id, self._taken_message(wanted.email, stored_owner))
                    continue
            else:
                owner = current.emails.get(wanted.email.casefold())
                if owner is not None and owner.id != stored.id:
                    self._freeze_user(external_id, self._taken_message(wanted.email, owner))
                    continue
                self._update_user(stored, wanted)
                if stored.status == "deactivated" and stored.deactivated_by == "sync":
                    self.ops.append(Operation("user", "reactivate", external_id, stored.email))
            targets.add(external_id)

        for external_id, stored in current.users.items():
            if external_id in desired or external_id in self.frozen_users:
                continue
            if not self.source.complete:
                self.frozen_users.add(external_id)  # never deactivate on a partial read
                continue
            why = "out of the user filter's scope" if external_id in leaving else "removed from the directory"
            self._leave(stored, why, deactivate)
        return targets

    def _taken_message(self, email: str, owner: StoredUser) -> str:
        if owner.directory_id is None:
            return (
                f"email {email} belongs to a local user (id {owner.id}); set link_existing_users: by_email to link them"
            )
        if owner.directory_id == self.context.directory_id:
            return f"email {email} belongs to another user of this directory (external id {owner.external_id})"
        other = self.context.directories.get(owner.directory_id)
        where = f"directory {other!r}" if other else "another directory"
        return f"email {email} belongs to a user of {where}; it is never taken over"

    def _leave(self, stored: StoredUser, why: str, deactivate: bool) -> None:
        """A user that is gone, disabled or out of scope: deactivate, or keep as is with `ignore`."""
        assert stored.external_id is not None
        if deactivate:
            if stored.status == "active":
                self.ops.append(Operation("user", "deactivate", stored.external_id, stored.email, {"reason": why}))
            return
        self.frozen_users.add(stored.external_id)
        if stored.status == "active":
            self.plan.retained.append(stored.external_id)

    @staticmethod
    def _values(user: DesiredUser) -> dict[str, Any]:
        return {**user.fields, "attributes": user.attributes}

    def _create_user(self, wanted: DesiredUser) -> None:
        self.ops.append(Operation("user", "create", wanted.external_id, wanted.email, self._values(wanted)))

    def _changes(self, stored: StoredUser, wanted: DesiredUser) -> dict[str, list[Any]]:
        changes: dict[str, list[Any]] = {}
        for name in USER_FIELDS:
            before, after = getattr(stored, name), wanted.fields[name]
            if before != after and not (name == "email" and after is None):
                changes[name] = [before, after]
        for name in sorted(set(stored.attributes) | set(wanted.attributes)):
            before, after = stored.attributes.get(name), wanted.attributes.get(name)
            if before != after:
                changes[f"attributes.{name}"] = [before, after]
        return changes

    def _update_user(self, stored: StoredUser, wanted: DesiredUser) -> None:
        changes = self._changes(stored, wanted)
        if changes:
            self.ops.append(
                Operation(
                    "user",
                    "update",
                    wanted.external_id,
                    wanted.email,
                    {"user_id": stored.id, "changes": changes, "attributes": wanted.attributes},
                )
            )

    def _link_user(self, stored: StoredUser, wanted: DesiredUser) -> None:
        self.ops.append(
            Operation(
                "user",
                "link",
                wanted.external_id,
                wanted.email,
                {
                    "user_id": stored.id,
                    "changes": self._changes(stored, wanted),
                    "attributes": wanted.attributes,
                    "reactivate": stored.status == "deactivated" and stored.deactivated_by == "sync",
                },
            )
        )

    # -- groups -------------------------------------------------------------------------

    def _plan_groups(self) -> None:
        for external_id in sorted(self.source.groups):
            if external_id in self.frozen_groups:
                continue
            group = self.source.groups[external_id].group
            stored = self.current.groups.get(external_id)
            if stored is None:
                self.ops.append(
                    Operation(
                        "group",
                        "create",
                        external_id,
                        group.name,
                        {"name": group.name, "description": group.description},
                    )
                )
                continue
            changes = {
                name: [before, after]
                for name, before, after in (
                    ("name", stored.name, group.name),
                    ("description", stored.description, group.description),
                )
                if before != after
            }
            if changes:
                self.ops.append(
                    Operation(
                        "group",
                        "update",
                        external_id,
                        group.name,
                        {"group_id": stored.id, "changes": changes},
                    )
                )
        if not self.source.complete:
            return
        for external_id, stored in self.current.groups.items():
            if external_id not in self.source.groups and external_id not in self.frozen_groups:
                self.ops.append(Operation("group", "delete", external_id, stored.name, {"group_id": stored.id}))

    def _plan_group_memberships(self, targets: set[str]) -> None:
        frozen_groups, frozen_users = self.frozen_groups, self.frozen_users
        deleted = {op.external_id for op in self.ops if op.object == "group" and op.action == "delete"}
        names = {group_id: stored.name for group_id, stored in self.current.groups.items()}
        names.update((group_id, entry.group.name) for group_id, entry in self.source.groups.items())
        stored: dict[str, set[str]] = defaultdict(set)
        for group_id, user_id in self.current.group_members:
            stored[group_id].add(user_id)
        wanted = targets - frozen_users
        # Each user's wanted and unwanted groups, (name, id): the memberships of the planned users
        # in the groups of the source, against those the store has (set operations per group).
        added: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for group_id, entry in self.source.groups.items():
            if group_id in frozen_groups or group_id in deleted:
                continue
            named = (names[group_id], group_id)
            for user_id in (entry.users & wanted) - stored.get(group_id, set()):
                added[user_id].append(named)
        removed: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for group_id, members in stored.items():
            if group_id in frozen_groups or group_id in deleted:
                continue
            source = self.source.groups.get(group_id)
            named = (names[group_id], group_id)
            for user_id in members - frozen_users - (source.users & targets if source else set()):
                removed[user_id].append(named)
        emails = self._emails()
        ops = self.ops
        for action, by_user in (("add", added), ("remove", removed)):
            # Made in apply order (user, then label, then key), which for one user's label
            # "email / group" is the group's name, then its id: a sort of each user's few groups
            # instead of one of every membership.
            for user_id in sorted(by_user):
                user = emails.get(user_id, user_id)
                for group, group_id in sorted(by_user[user_id]):
                    ops.append(
                        Operation(
                            "group_membership",
                            action,
                            user_id,
                            membership_label(user, group),
                            MembershipDetail(group_id, user_id, group, user),
                        )
                    )
            self.in_order.add(("group_membership", action))

    def _emails(self) -> dict[str, str]:
        """external id -> the email a membership change names: as planned, else as stored."""
        emails = {external_id: stored.email for external_id, stored in self.current.users.items()}
        emails.update(
            (op.external_id, op.label) for op in self.ops if op.object == "user" and op.external_id is not None
        )
        return emails

    def _plan_org_memberships(self, targets: set[str], mapping_groups: dict[int, str | None]) -> None:
        context = self.context
        wanted: dict[OrgKey, int] = {}
        if context.default_organization is not None:
            org_id = context.default_organization[0]
            for user_id in targets:
                wanted[(org_id, user_id, context.default_origin)] = context.default_role[0]
        for rule in context.group_mappings:
            group_id = mapping_groups.get(rule.id)
            if group_id is None:
                continue
            for user_id in transitive_users(group_id, self.source.groups) & targets:
                wanted[(rule.organization_id, user_id, rule.origin)] = rule.role_id

        emails = self._emails()
        current = self.current.org_memberships

        def describe(key: OrgKey, role_id: int, action: str, role_before: int | None = None) -> Operation:
            org_id, user_id, origin = key
            detail = {
                "key": list(key),
                "organization_id": org_id,
                "organization": context.organizations.get(org_id),
                "user": emails.get(user_id, user_id),
                "role_id": role_id,
                "role": context.roles.get(role_id),
                "origin": origin,
            }
            if role_before is not None:
                detail |= {"role_before_id": role_before, "role_before": context.roles.get(role_before)}
            return Operation("org_membership", action, user_id, f"{detail['user']} in {detail['organization']}", detail)

        def skip(key: OrgKey) -> bool:
            return key[1] in self.frozen_users or key[2] in self.retained_origins

        for key, role_id in wanted.items():
            if skip(key):
                continue
            if key not in current:
                self.ops.append(describe(key, role_id, "grant"))
            elif current[key] != role_id:
                self.ops.append(describe(key, role_id, "change", current[key]))
        for key, role_id in current.items():
            if key not in wanted and not skip(key):
                self.ops.append(describe(key, role_id, "revoke"))

    # -- counts -------------------------------------------------------------------------

    def _count(self, desired: Mapping[str, DesiredUser]) -> None:
        plan = self.plan
        steps = plan._by_step()
        touched_users = {op.external_id for (obj, _), ops in steps.items() if obj == "user" for op in ops}
        unchanged = sum(
            1
            for external_id, user in desired.items()
            if external_id in self.current.users
            and external_id not in touched_users
            and external_id not in self.frozen_users
        )
        n = Counter({step: len(ops) for step, ops in steps.items()})
        plan.counts = {
            "users_created": n["user", "create"],
            "users_updated": n["user", "update"] + n["user", "link"],
            "users_deactivated": n["user", "deactivate"],
            "users_reactivated": n["user", "reactivate"]
            + (sum(1 for op in plan.of("user", "link") if op.detail["reactivate"]) if n["user", "link"] else 0),
            "users_unchanged": unchanged,
            "user_errors": len({i.external_id for i in plan.errors if i.object == "user"}),
            "users_retained": len(plan.retained),
            "groups_created": n["group", "create"],
            "groups_updated": n["group", "update"],
            "groups_deleted": n["group", "delete"],
            "groups_processed": len(self.source.groups),
            "memberships_added": n["group_membership", "add"] + n["org_membership", "grant"],
            "memberships_removed": n["group_membership", "remove"] + n["org_membership", "revoke"],
            "memberships_changed": n["org_membership", "change"],
            # The same, apart: group memberships mirror the source, organization memberships are AccessIQ's.
            "group_memberships_added": n["group_membership", "add"],
            "group_memberships_removed": n["group_membership", "remove"],
            "org_memberships_granted": n["org_membership", "grant"],
            "org_memberships_revoked": n["org_membership", "revoke"],
        }


def _in_order(operations: list[Operation], ordered_steps: Collection[tuple[str, str]] = ()) -> list[Operation]:
    """Apply order: by step, then within a step by external id, label and key (all of a step's
    operations have a key or none has). The operations of `ordered_steps` are in that order already."""
    steps: dict[int, list[Operation]] = defaultdict(list)
    for op in operations:
        steps[_STEP_INDEX[op.object, op.action]].append(op)
    ordered: list[Operation] = []
    for index in sorted(steps):
        ops = steps[index]
        if STEPS[index] in ordered_steps:
            pass
        elif any(op.external_id is None for op in ops):
            ops.sort(key=_full_order)
        else:
            # A first sync orders hundreds of thousands of memberships: sort by the C-level
            # (external id, label) first, then settle the rare ties by key.
            ops.sort(key=_id_and_label)
            _settle_ties(ops)
        ordered += ops
    return ordered


_id_and_label = itemgetter(2, 3)  # (external_id, label)


def _full_order(op: Operation) -> tuple[str, str, tuple[Any, ...]]:
    return (op.external_id or "", op.label, tuple(op.detail.get("key", ())))


def _settle_ties(ops: list[Operation]) -> None:
    """Order each run of operations with equal (external id, label) by their key, in place."""
    start = 0
    while start < len(ops):
        end = start + 1
        head = ops[start]
        while end < len(ops) and ops[end][2] == head[2] and ops[end][3] == head[3]:
            end += 1
        if end - start > 1:
            ops[start:end] = sorted(ops[start:end], key=_full_order)
        start = end


def active_users(current: StoreState) -> int:
    return sum(1 for user in current.users.values() if user.status == "active")
