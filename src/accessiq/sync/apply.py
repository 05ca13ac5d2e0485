"""Apply: the one place a sync writes. Everything happens in the caller's transaction, cursor included."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from accessiq.store.bulk import insert_many
from accessiq.store.database import json_text
from accessiq.store.tables import (
    Base,
    Cursor,
    Directory,
    Group,
    GroupMapping,
    GroupMembership,
    OrganizationMembership,
    RunChange,
    RunError,
    SourceObject,
    User,
)
from accessiq.sync.affected import row_hash
from accessiq.sync.planner import Operation, Plan, membership_of
from accessiq.sync.state import store_counts

T = TypeVar("T")
_CHUNK = 500
_LOG_SLICE = 5000
_RETAINED = "left the directory or its scope; deactivation is ignore"
_ANALYZE_AFTER = 1000
_ALL_IDS_FROM = 5000  # a plan naming more users or groups than this reads all of the directory's ids
_BULK_TABLES = ("users", "groups", "group_memberships", "organization_memberships", "source_objects")


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_rows(
    session: Session,
    model: type[Base],
    rows: list[dict[str, Any]] | list[tuple[Any, ...]],
    same: dict[str, Any] | None = None,
    columns: tuple[str, ...] | None = None,
    converted: bool = False,
) -> None:
    """Straight to the driver (executemany on SQLite, COPY on PostgreSQL); `same` holds what every
    row shares; with `columns`, rows are tuples of those (`converted`: as the driver takes them).
    Nothing is read back: callers read ids back in one query if needed."""
    insert_many(session, Base.metadata.tables[model.__tablename__], rows, same, columns=columns, converted=converted)


# (kind, external id, data): a mirror record to store, or with None to delete.
MirrorRecord = tuple[str, str, dict[str, Any] | None]


@dataclass(frozen=True)
class MirrorChange:
    """How the stored source mirror moves with this plan, and the cursor that goes with it."""

    upserts: list[tuple[str, str, dict[str, Any]]]
    deletes: list[tuple[str, str]]
    cursor: dict[str, Any] | None
    full: bool
    # Mapped emails (lowered, None when none) of users whose stored one changes or whose row is written.
    emails: dict[str, str | None] = field(default_factory=dict)
    # What the plan was made from; store counts are added once it is applied.
    basis: dict[str, Any] | None = None
    # Upserted keys with a stored row to replace (None: any may have one); digests known already.
    replaced: list[tuple[str, str]] | None = None
    digests: dict[tuple[str, str], str] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "upserts": [list(row) for row in self.upserts],
            "deletes": [list(key) for key in self.deletes],
            "cursor": self.cursor,
            "full": self.full,
            "emails": self.emails,
            "basis": self.basis,
            "replaced": None if self.replaced is None else [list(key) for key in self.replaced],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MirrorChange:
        return cls(
            upserts=[(kind, ext, row) for kind, ext, row in data["upserts"]],
            deletes=[(kind, ext) for kind, ext in data["deletes"]],
            cursor=data["cursor"],
            full=data["full"],
            emails=dict(data.get("emails") or {}),
            basis=data.get("basis"),
            replaced=None if data.get("replaced") is None else [(k, e) for k, e in data["replaced"]],
        )


def apply_plan(session: Session, directory_id: int, plan: Plan, mirror: MirrorChange, now: datetime) -> None:
    """Carry out `plan`, move the mirror and the cursor, pin new group references."""
    _apply_mirror(session, directory_id, mirror, now)
    directory = session.get_one(Directory, directory_id)
    if plan.pins:
        directory.group_pins = {**(directory.group_pins or {}), **plan.pins}
    _Applier(session, directory_id, now).run(plan.operations)
    if len(plan.operations) + len(mirror.upserts) > _ANALYZE_AFTER:
        # A bulk load leaves the query planner's statistics saying the tables are (nearly)
        # empty; the next run's joins would then pick nested loops over millions of rows.
        # Both PostgreSQL and SQLite take ANALYZE inside a transaction.
        for table in _BULK_TABLES:
            session.execute(text(f"ANALYZE {table}"))
    # Mappings taken out of the document go once nothing they granted is left.
    for mapping in session.scalars(
        select(GroupMapping).where(GroupMapping.directory_id == directory_id, GroupMapping.removed)
    ):
        left = session.scalar(
            select(OrganizationMembership.id)
            .where(OrganizationMembership.origin == f"group-mapping:{mapping.id}")
            .limit(1)
        )
        if left is None:
            session.delete(mapping)
    cursor = session.get_one(Cursor, directory_id)
    cursor.basis = None if mirror.basis is None else {**mirror.basis, "counts": store_counts(session, directory_id)}


def store_records(session: Session, directory_id: int, records: list[MirrorRecord]) -> None:
    """Store or delete mirror records that are no part of the source and change nothing else."""
    for kind, ext, data in records:
        session.execute(
            delete(SourceObject).where(
                SourceObject.directory_id == directory_id, SourceObject.kind == kind, SourceObject.external_id == ext
            )
        )
        if data is not None:
            row = SourceObject(directory_id=directory_id, kind=kind, external_id=ext, data=data, hash=row_hash(data))
            session.add(row)


def _apply_mirror(session: Session, directory_id: int, mirror: MirrorChange, now: datetime) -> None:
    by_kind: dict[str, list[str]] = defaultdict(list)
    replaced = [(k, e) for k, e, _ in mirror.upserts] if mirror.replaced is None else mirror.replaced
    for kind, external_id in [*mirror.deletes, *replaced]:
        by_kind[kind].append(external_id)
    for kind, ids in by_kind.items():
        for chunk in _chunks(ids):
            session.execute(
                delete(SourceObject).where(
                    SourceObject.directory_id == directory_id,
                    SourceObject.kind == kind,
                    SourceObject.external_id.in_(chunk),
                )
            )
    _insert_rows(
        session,
        SourceObject,
        [
            {
                "kind": kind,
                "external_id": ext,
                "data": data,
                "hash": mirror.digests.get((kind, ext)) or row_hash(data),
                "email_key": mirror.emails.get(ext) if kind == "user" else None,
            }
            for kind, ext, data in mirror.upserts
        ],
        {"directory_id": directory_id},
    )
    written = {ext for kind, ext, _ in mirror.upserts if kind == "user"}
    emails = [{"ext": ext, "key": key} for ext, key in mirror.emails.items() if ext not in written]
    if emails:
        session.connection().execute(
            update(SourceObject)
            .where(
                SourceObject.directory_id == directory_id,
                SourceObject.kind == "user",
                SourceObject.external_id == bindparam("ext"),
            )
            .values(email_key=bindparam("key")),
            emails,
        )
    cursor = session.get(Cursor, directory_id)
    if cursor is None:
        cursor = Cursor(directory_id=directory_id)
        session.add(cursor)
    cursor.value = mirror.cursor
    cursor.updated_at = now
    if mirror.full:
        cursor.last_full_sync_at = now


class _Applier:
    def __init__(self, session: Session, directory_id: int, now: datetime) -> None:
        self.session = session
        self.directory_id = directory_id
        self.now = now
        self.users_named: set[str] = set()
        self.groups_named: set[str] = set()

    @cached_property
    def user_ids(self) -> dict[str, int]:
        return self._ids(User, self.users_named)

    @cached_property
    def group_ids(self) -> dict[str, int]:
        return self._ids(Group, self.groups_named)

    def _ids(self, table: type[User] | type[Group], named: set[str]) -> dict[str, int]:
        """external id -> row id of the directory's users or groups the plan names: all of them
        in one scan when it names many, else just those (an incremental run's few)."""
        query = select(table.external_id, table.id).where(table.directory_id == self.directory_id)
        if len(named) > _ALL_IDS_FROM:
            return {str(ext): row_id for ext, row_id in self.session.connection().execute(query)}
        ids: dict[str, int] = {}
        for chunk in _chunks(sorted(named)):
            ids.update(
                (str(ext), row_id)
                for ext, row_id in self.session.connection().execute(query.where(table.external_id.in_(chunk)))
            )
        return ids

    def _insert(self, model: type[Base], rows: list[dict[str, Any]], same: dict[str, Any] | None = None) -> None:
        _insert_rows(self.session, model, rows, same)

    def run(self, operations: list[Operation]) -> None:
        self.users_named = {op.external_id for op in operations if op.object != "group" and op.external_id}
        self.groups_named = {membership_of(op).group_id for op in operations if op.object == "group_membership"}
        steps: dict[tuple[str, str], list[Operation]] = defaultdict(list)
        order: list[tuple[str, str]] = []
        for op in operations:
            step = (op.object, op.action)
            if step not in steps:
                order.append(step)
            steps[step].append(op)
        for step in order:
            getattr(self, f"_{step[0]}_{step[1]}")(steps[step])

    # -- groups

    def _group_create(self, ops: list[Operation]) -> None:
        rows = [
            {"external_id": op.external_id, "name": op.detail["name"], "description": op.detail["description"]}
            for op in ops
        ]
        self._insert(Group, rows, {"directory_id": self.directory_id, "created_at": self.now})
        self.__dict__.pop("group_ids", None)

    def _group_update(self, ops: list[Operation]) -> None:
        self.session.execute(
            update(Group),
            [
                {"id": op.detail["group_id"], **{k: after for k, (_, after) in op.detail["changes"].items()}}
                for op in ops
            ],
        )

    def _group_delete(self, ops: list[Operation]) -> None:
        ids = [op.detail["group_id"] for op in ops]
        for chunk in _chunks(ids):
            self.session.execute(delete(GroupMembership).where(GroupMembership.group_id.in_(chunk)))
            self.session.execute(delete(Group).where(Group.id.in_(chunk)))

    # -- users

    def _user_create(self, ops: list[Operation]) -> None:
        rows = [
            {
                **op.detail,  # the core fields and attributes
                "email_key": op.detail["email"].casefold(),
                "external_id": op.external_id,
            }
            for op in ops
        ]
        same = {"status": "active", "directory_id": self.directory_id, "created_at": self.now, "updated_at": self.now}
        self._insert(User, rows, same)
        self.__dict__.pop("user_ids", None)

    def _changed_values(self, op: Operation) -> dict[str, Any]:
        values: dict[str, Any] = {"id": op.detail["user_id"], "updated_at": self.now}
        for name, (_, after) in op.detail["changes"].items():
            if name.startswith("attributes."):
                values["attributes"] = op.detail["attributes"]
            else:
                values[name] = after
                if name == "email":
                    values["email_key"] = after.casefold()
        return values

    def _user_update(self, ops: list[Operation]) -> None:
        rows = [self._changed_values(op) for op in ops]
        # Group rows by the columns they set so each batch is one executemany.
        batches: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            batches[tuple(sorted(row))].append(row)
        for batch in batches.values():
            for chunk in _chunks(batch):
                self.session.execute(update(User), list(chunk))

    def _user_link(self, ops: list[Operation]) -> None:
        for op in ops:
            values = self._changed_values(op)
            values |= {"directory_id": self.directory_id, "external_id": op.external_id}
            if op.detail["reactivate"]:
                values |= {"status": "active", "deactivated_by": None}
            self.session.execute(update(User), [values])
            self.user_ids[op.external_id or ""] = op.detail["user_id"]

    def _set_status(self, ops: list[Operation], status: str, by: str | None) -> None:
        rows = [
            {
                "id": self.user_ids[op.external_id or ""],
                "status": status,
                "deactivated_by": by,
                "updated_at": self.now,
            }
            for op in ops
        ]
        for chunk in _chunks(rows):
            self.session.execute(update(User), list(chunk))

    def _user_reactivate(self, ops: list[Operation]) -> None:
        self._set_status(ops, "active", None)

    def _user_deactivate(self, ops: list[Operation]) -> None:
        self._set_status(ops, "deactivated", "sync")

    # -- memberships

    def _group_membership_add(self, ops: list[Operation]) -> None:
        groups, users = self.group_ids, self.user_ids
        rows = [(groups[m.group_id], users[m.user_id]) for m in map(membership_of, ops)]
        _insert_rows(self.session, GroupMembership, rows, columns=("group_id", "user_id"))

    def _group_membership_remove(self, ops: list[Operation]) -> None:
        statement = delete(GroupMembership).where(
            and_(GroupMembership.group_id == bindparam("g"), GroupMembership.user_id == bindparam("u"))
        )
        rows = [{"g": self.group_ids[m.group_id], "u": self.user_ids[m.user_id]} for m in map(membership_of, ops)]
        self.session.connection().execute(statement, rows)

    def _org_membership_grant(self, ops: list[Operation]) -> None:
        users = self.user_ids
        rows = [
            (org, users[user], origin, op.detail["role_id"]) for op in ops for org, user, origin in [op.detail["key"]]
        ]
        columns = ("organization_id", "user_id", "origin", "role_id")
        _insert_rows(self.session, OrganizationMembership, rows, {"created_at": self.now}, columns)

    def _org_membership_statement(self, ops: list[Operation], role: bool) -> None:
        condition = and_(
            OrganizationMembership.organization_id == bindparam("o"),
            OrganizationMembership.user_id == bindparam("u"),
            OrganizationMembership.origin == bindparam("org_origin"),
        )
        statement: Any = (
            update(OrganizationMembership).where(condition).values(role_id=bindparam("r"))
            if role
            else delete(OrganizationMembership).where(condition)
        )
        rows = [
            {"o": org, "u": self.user_ids[user], "org_origin": origin, "r": op.detail["role_id"]}
            for op in ops
            for org, user, origin in [op.detail["key"]]
        ]
        self.session.connection().execute(statement, rows)

    def _org_membership_change(self, ops: list[Operation]) -> None:
        self._org_membership_statement(ops, role=True)

    def _org_membership_revoke(self, ops: list[Operation]) -> None:
        self._org_membership_statement(ops, role=False)


def record_log(session: Session, run_id: int, plan: Plan) -> None:
    """Write every operation and every per-object error of `plan` into the run log.

    In slices, so a first sync's hundreds of thousands of log rows never sit in memory at once.
    """
    retain = Operation("user", "retain", None, "", {"reason": _RETAINED})
    entries = itertools.chain(plan.operations, (retain._replace(external_id=ext, label=ext) for ext in plan.retained))
    for start, batch in _slices(_log_rows(entries), _LOG_SLICE):
        rows = [(run_id, seq, *row) for seq, row in enumerate(batch, start)]
        _insert_rows(session, RunChange, rows, columns=_LOG_COLUMNS, converted=True)
    errors = [
        {"run_id": run_id, "object": issue.object, "external_id": issue.external_id, "message": issue.message}
        for issue in plan.errors
    ]
    _insert_rows(session, RunError, errors)


def _slices(items: Iterable[T], size: int) -> Iterator[tuple[int, list[T]]]:
    """(offset, next `size` items) until `items` ends."""
    iterator = iter(items)
    start = 0
    while batch := list(itertools.islice(iterator, size)):
        yield start, batch
        start += len(batch)


_LOG_COLUMNS = ("run_id", "seq", "object", "action", "external_id", "label", "detail")


def _log_rows(entries: Iterable[Operation]) -> Iterator[tuple[str, str, str | None, str, str]]:
    """(object, action, external id, label, detail) of each entry, except that one user's
    consecutive membership changes of one kind share a row, `{"user": email, "groups": [name,
    ...]}`: a first sync adds five or so per user. `services.runs.run_changes` lists them one by one."""
    for key, run in itertools.groupby(entries, _shared_row):
        ops = list(run)
        if key is None or len(ops) == 1:
            yield from ((*op[:3], op[3][:500], _log_detail(op)) for op in ops)
        else:
            action, external_id, user = key
            groups = [membership_of(op).group for op in ops]
            yield "group_membership", action, external_id, user[:500], json_text({"user": user, "groups": groups})


def _shared_row(op: Operation) -> tuple[str, str | None, str] | None:
    return (op.action, op.external_id, membership_of(op).user) if op.object == "group_membership" else None


_NOT_LOGGED = frozenset(("key", "user_id", "group_id", "attributes"))


def _log_detail(op: Operation) -> str:
    """The detail the log keeps, as JSON text: ids and keys serve apply, the log what a person reads."""
    detail = op.detail
    if op.object == "group_membership":  # the most frequent by far: {key, group, user}
        membership = membership_of(op)
        return json_text({"group": membership.group, "user": membership.user})
    return json_text(
        {k: v for k, v in detail.items() if k not in _NOT_LOGGED or (k == "attributes" and op.action == "create")}
    )
