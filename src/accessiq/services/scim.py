"""SCIM 2.0 Users and Groups of a push directory: what the SCIM face reads and writes.

Reads answer from the directory's source mirror, which holds each resource as its client wrote it.
Every write becomes a push (`accessiq.jobs.push`): the change is turned into source events that
the engine plans and applies like an incremental read, as a run with trigger `push`. Resources
are scim2-models objects; the face parses and serialises them. Refusals are scim2-models
exceptions (they carry the `scimType`), or AccessIQ errors with an HTTP status.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from scim2_models import (
    Context,
    EnterpriseUser,
    Group,
    GroupMember,
    InvalidFilterException,
    InvalidValueException,
    Meta,
    NotFoundException,
    PatchOp,
    PreconditionFailedException,
    Resource,
    ScimFilter,
    ScimPolicy,
    UniquenessException,
    User,
)
from scim2_models.path.expressions import CompareOperator, Comparison
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accessiq.connectors.base import (
    GroupRemoved,
    GroupUpserted,
    SourceEvent,
    SourceGroup,
    SourceUser,
    UserRemoved,
    UserUpserted,
)
from accessiq.errors import AccessIQError, NotFoundError
from accessiq.jobs.push import PushChange, push
from accessiq.services import Store
from accessiq.services.directories import get_directory
from accessiq.services.scim_tokens import receives_pushes
from accessiq.store.tables import Directory, SourceObject, utcnow
from accessiq.sync.apply import MirrorRecord
from accessiq.sync.state import load_mirror_rows

ScimUser = User[EnterpriseUser]
R = TypeVar("R", bound=Resource[Any])

# What real clients send besides the RFC (see README, "Receive changes by SCIM"): attributes we do
# not model are dropped, Entra's `Remove` with a value removes those values, and a filtered path
# such as `emails[type eq "work"].value` creates the entry it describes.
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)
MAX_PAGE = 200  # ServiceProviderConfig filter.maxResults; larger counts are capped
MAX_FILTER = 2000  # characters
MAX_MEMBERS = 10_000  # members one write may name
RETRY_AFTER = 60  # seconds a client waits before sending a held or busy write again

_ENTERPRISE = str(EnterpriseUser.__schema__)
_ENTERPRISE_KEY = "enterprise"  # where the mirror keeps the extension, for mapping paths
# Longest values the store keeps (users table columns); a longer one is refused, not truncated.
_LIMITS = {"userName": 320, "displayName": 400, "externalId": 200, "givenName": 200, "familyName": 200}
_MAX_STRING = 4096
_MAX_ITEMS = 100  # entries of a multi-valued user attribute


class PushHeldError(AccessIQError):
    """The write is held (a blocked run awaiting approval) or failed to apply: send it again later."""

    http_status = 503
    kind = "push_held"


@dataclass(frozen=True)
class ResourcePage:
    total: int
    start: int
    resources: list[Resource[Any]]


def push_directory(session: Session, ref: str) -> int:
    """The id of the directory `ref` names, when it receives pushes; NotFoundError otherwise."""
    try:
        directory = get_directory(session, ref)
    except NotFoundError:
        directory = None
    if directory is None or not receives_pushes(directory):
        raise NotFoundError(f"no SCIM directory {ref!r}")
    return directory.id


def _linked(session: Session, directory_id: int) -> bool:
    """True for a pulled directory that also receives pushes (`push: true`): its SCIM resources are
    kept apart from the pulled records, and a push moves only what it can safely say about them."""
    directory = session.get(Directory, directory_id)
    return directory is not None and directory.provider != "scim"


def _kind(session: Session, directory_id: int, kind: str) -> str:
    """Where the directory's SCIM resources of `kind` (user, group) are kept in the mirror."""
    return f"scim_{kind}" if _linked(session, directory_id) else kind


# -- the mirror <-> resources ------------------------------------------------------------------


def _version(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "meta"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return f'W/"{hashlib.sha256(text.encode()).hexdigest()[:20]}"'


def _user_row(user: ScimUser) -> dict[str, Any]:
    data: dict[str, Any] = user.model_dump(mode="json", scim_ctx=Context.DEFAULT)
    if _ENTERPRISE in data:
        data[_ENTERPRISE_KEY] = data.pop(_ENTERPRISE)
    return data


def _user_of(data: dict[str, Any]) -> ScimUser:
    body = dict(data)
    if _ENTERPRISE_KEY in body:
        body[_ENTERPRISE] = body.pop(_ENTERPRISE_KEY)
    return ScimUser.model_validate(body, scim_policy=POLICY)


def _group_of(row: dict[str, Any]) -> Group:
    """The group resource: what its client wrote, with the members the mirror holds now."""
    data = dict(row.get("data") or {"displayName": row["name"]})
    written = {m.get("value"): m for m in data.pop("members", None) or [] if isinstance(m, dict)}
    group = Group.model_validate(data, scim_policy=POLICY)

    def member(value: str, kind: str) -> GroupMember:
        entry = written.get(value) or {}
        return GroupMember(value=value, type=kind, ref=entry.get("$ref"), display=entry.get("display"))

    members = [member(u, "User") for u in row.get("users", [])]
    members += [member(g, "Group") for g in row.get("groups", [])]
    group.members = members or None
    return group


def _stamp(resource: R, resource_type: str, before: Resource[Any] | None) -> R:
    now = utcnow()
    created = before.meta.created if before is not None and before.meta is not None else now
    resource.meta = Meta(resource_type=resource_type, created=created, last_modified=now)
    body = resource.model_dump(mode="json", scim_ctx=Context.DEFAULT)
    resource.meta.version = _version(body)
    return resource


def _check_sizes(value: Any, key: str = "", depth: int = 0) -> None:
    """Refuse values the store cannot keep, and documents nested or repeated beyond reason."""
    if depth > 6:
        raise InvalidValueException(detail="the resource is nested too deeply")
    if isinstance(value, str):
        limit = _LIMITS.get(key, _MAX_STRING)
        if key == "value" and "@" in value:
            limit = 320
        if len(value) > limit:
            raise InvalidValueException(detail=f"{key or 'a value'} is longer than {limit} characters")
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_sizes(item, str(name), depth + 1)
    elif isinstance(value, list):
        if len(value) > (MAX_MEMBERS if key == "members" else _MAX_ITEMS):
            raise InvalidValueException(detail=f"{key} has too many entries")
        for item in value:
            _check_sizes(item, key, depth + 1)


def _rows(session: Session, directory_id: int, kind: str, ids: Iterable[str] | None = None) -> dict[str, Any]:
    """The directory's SCIM resources of `kind` (user, group) as stored, by id."""
    wanted = None if ids is None else set(ids)
    return load_mirror_rows(session, directory_id, _kind(session, directory_id, kind), wanted)


def _one(session: Session, directory_id: int, kind: str, resource_id: str) -> dict[str, Any]:
    row = _rows(session, directory_id, kind, [resource_id]).get(resource_id) if len(resource_id) <= 200 else None
    if row is None:
        raise NotFoundException(detail=f"{'User' if kind == 'user' else 'Group'} {resource_id} not found")
    return dict(row)


def _patched(current: R, patch: PatchOp[Any], if_match: str | None) -> R:
    """A copy of `current` with the PATCH applied (atomically: `current` is left as it was)."""
    _check_version(current, if_match)
    patched = current.model_copy(deep=True)
    patch.patch(patched, scim_policy=POLICY)
    patched.id = current.id
    return patched


def _check_version(current: Resource[Any], if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    version = current.meta.version if current.meta is not None else None
    if version not in [tag.strip() for tag in if_match.split(",")]:
        raise PreconditionFailedException(detail="the resource changed since that version")


# -- reads --------------------------------------------------------------------------------------


def get_user(session: Session, directory_id: int, user_id: str) -> ScimUser:
    return _user_of(_one(session, directory_id, "user", user_id)["data"])


def get_group(session: Session, directory_id: int, group_id: str) -> Group:
    return _group_of(_one(session, directory_id, "group", group_id))


def list_users(
    session: Session, directory_id: int, filter: str | None, start: int, count: int | None
) -> ResourcePage:
    matcher = _filter(ScimUser, filter)
    if matcher is None:
        total, rows = _stored_page(session, directory_id, "user", start, count)
        return ResourcePage(total, max(start, 1), [_user_of(row["data"]) for row in rows])
    ids = _user_name_lookup(session, directory_id, matcher)
    users = (_user_of(row["data"]) for _, row in sorted(_rows(session, directory_id, "user", ids).items()))
    return _page(users, ScimUser, filter, start, count)


def _stored_page(
    session: Session, directory_id: int, kind: str, start: int, count: int | None
) -> tuple[int, list[dict[str, Any]]]:
    """(how many resources of `kind` there are, the rows of one page of them): a list without a filter
    reads only its page, in id order, and counts the rest in the database."""
    mine = (SourceObject.directory_id == directory_id, SourceObject.kind == _kind(session, directory_id, kind))
    total = session.scalar(select(func.count()).select_from(SourceObject).where(*mine)) or 0
    first, size = _window(start, count)
    if size == 0 or first >= total:
        return total, []
    query = select(SourceObject.data).where(*mine).order_by(SourceObject.external_id).offset(first).limit(size)
    return total, [dict(row) for row in session.scalars(query)]


def _window(start: int, count: int | None) -> tuple[int, int]:
    """(rows to skip, rows to return) for SCIM's 1-based `startIndex` and `count`, capped at MAX_PAGE."""
    first = min(max(start, 1), 2**31) - 1
    return first, MAX_PAGE if count is None else max(0, min(count, MAX_PAGE))


def _user_name_lookup(session: Session, directory_id: int, matcher: ScimFilter[Any] | None) -> list[str] | None:
    """For `userName eq "…"`, the lookup every provisioning client makes before a create, the few
    users that can match (the filter still decides); None to read them all."""
    node = matcher.ast if matcher is not None else None
    if not isinstance(node, Comparison) or node.op != CompareOperator.eq or not isinstance(node.value, str):
        return None
    path = node.attr_path
    if path.attr.casefold() != "username" or path.sub_attr is not None or path.uri not in (None, str(User.__schema__)):
        return None
    return [ext for ext, _ in _user_names(session, directory_id, node.value.casefold())]


def list_groups(
    session: Session, directory_id: int, filter: str | None, start: int, count: int | None
) -> ResourcePage:
    if _filter(Group, filter) is None:
        total, rows = _stored_page(session, directory_id, "group", start, count)
        return ResourcePage(total, max(start, 1), [_group_of(row) for row in rows])
    groups = (_group_of(row) for _, row in sorted(_rows(session, directory_id, "group").items()))
    return _page(groups, Group, filter, start, count)


def _page(
    resources: Iterable[Resource[Any]], model: type[Resource[Any]], filter: str | None, start: int, count: int | None
) -> ResourcePage:
    matcher = _filter(model, filter)
    matched = [r for r in resources if matcher is None or matcher.match(r)]
    first, size = _window(start, count)
    return ResourcePage(len(matched), max(start, 1), matched[first : first + size])


def _filter(model: type[Resource[Any]], text: str | None) -> ScimFilter[Any] | None:
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER:
        raise InvalidFilterException(detail=f"the filter is longer than {MAX_FILTER} characters")
    try:
        return ScimFilter[model](text)  # type: ignore[valid-type]
    except InvalidFilterException:
        raise
    except Exception as exc:  # the parser's own errors: the filter does not parse or names nothing
        raise InvalidFilterException(detail=f"the filter does not parse: {str(exc).splitlines()[0][:200]}") from None


# -- writes -------------------------------------------------------------------------------------


def _carry(store: Store, directory_id: int, change: Callable[[Session], PushChange[R]]) -> R:
    pushed = push(store, directory_id, change)
    if pushed.status == "blocked":
        raise PushHeldError(
            f"the change is held for an administrator's approval (run {pushed.run_id}): {pushed.message}",
            hint="send it again later; once the run is approved it is in place",
        )
    if pushed.status == "failed":
        raise PushHeldError(f"the change could not be applied (run {pushed.run_id}): {pushed.message}")
    return pushed.result


def _unique_user_name(session: Session, directory_id: int, user: ScimUser, own_id: str | None) -> None:
    """Refuse a userName another user of the directory has, compared case-insensitively."""
    wanted = (user.user_name or "").casefold()
    for external_id, name in _user_names(session, directory_id, wanted):
        if external_id != own_id and name.casefold() == wanted:
            raise UniquenessException(detail=f"userName {user.user_name!r} is taken")


def _user_names(session: Session, directory_id: int, lowered: str) -> list[tuple[str, str]]:
    """(id, userName) of the mirrored users whose userName lowers to `lowered` (the database lowers ASCII
    only, so the caller compares again)."""
    name = SourceObject.data["data"]["userName"].as_string()
    query = select(SourceObject.external_id, name).where(
        SourceObject.directory_id == directory_id,
        SourceObject.kind == _kind(session, directory_id, "user"),
        func.lower(name) == lowered if lowered.isascii() else name.is_not(None),
    )
    return [(str(ext), str(value)) for ext, value in session.execute(query)]


def _user_event(user: ScimUser) -> UserUpserted:
    assert user.id is not None
    return UserUpserted(SourceUser(external_id=user.id, data=_user_row(user), active=user.active is not False))


def create_user(store: Store, directory_id: int, user: ScimUser) -> ScimUser:
    _check_sizes(_user_row(user))

    def change(session: Session) -> PushChange[ScimUser]:
        _unique_user_name(session, directory_id, user, None)
        user.id = uuid.uuid4().hex
        _stamp(user, "User", None)
        return _user_push(session, directory_id, None, user)

    return _carry(store, directory_id, change)


def replace_user(store: Store, directory_id: int, user_id: str, user: ScimUser, if_match: str | None) -> ScimUser:
    _check_sizes(_user_row(user))

    def change(session: Session) -> PushChange[ScimUser]:
        current = get_user(session, directory_id, user_id)
        _check_version(current, if_match)
        user.id = user_id
        return _user_change(session, directory_id, current, user)

    return _carry(store, directory_id, change)


def patch_user(store: Store, directory_id: int, user_id: str, patch: PatchOp[Any], if_match: str | None) -> ScimUser:
    def change(session: Session) -> PushChange[ScimUser]:
        current = get_user(session, directory_id, user_id)
        patched = _patched(current, patch, if_match)
        _check_sizes(_user_row(patched))
        return _user_change(session, directory_id, current, patched)

    return _carry(store, directory_id, change)


def _user_change(session: Session, directory_id: int, current: ScimUser, new: ScimUser) -> PushChange[ScimUser]:
    new.meta = current.meta
    if _user_row(new) == _user_row(current):
        return PushChange([], current)
    _unique_user_name(session, directory_id, new, current.id)
    _stamp(new, "User", current)
    return _user_push(session, directory_id, current, new)


def delete_user(store: Store, directory_id: int, user_id: str) -> None:
    def change(session: Session) -> PushChange[None]:
        row = _one(session, directory_id, "user", user_id)
        if not _linked(session, directory_id):
            return PushChange([UserRemoved(user_id)], None)
        pulled = _pulled_user(session, directory_id, _user_of(row["data"]).external_id)
        events: list[SourceEvent] = [UserRemoved(pulled[0])] if pulled is not None else []
        # Its SCIM groups no longer list it, as a push-only directory's groups do not.
        groups: list[MirrorRecord] = [
            ("scim_group", ext, {**group, "users": [u for u in group.get("users", []) if u != user_id]})
            for ext, group in _rows(session, directory_id, "group").items()
            if user_id in (group.get("users") or [])
        ]
        return PushChange(events, None, records=[("scim_user", user_id, None), *groups])

    _carry(store, directory_id, change)  # type: ignore[type-var]


def _group_event(session: Session, directory_id: int, group: Group) -> GroupUpserted:
    assert group.id is not None
    wanted = {m.value for m in group.members or [] if m.value}
    users = set(_rows(session, directory_id, "user", wanted)) if wanted else set()
    groups = set(_rows(session, directory_id, "group", wanted - users)) if wanted - users else set()
    unknown = wanted - users - groups
    if unknown:
        raise InvalidValueException(
            detail=f"member {sorted(unknown)[0]} is no user or group of this directory"
        )
    data = group.model_dump(mode="json", scim_ctx=Context.DEFAULT)
    return GroupUpserted(
        SourceGroup(external_id=group.id, name=group.display_name or group.id, data=data),
        added_users=frozenset(users),
        added_groups=frozenset(groups - {group.id}),
        replace_members=True,
    )


def _group_sizes(group: Group) -> None:
    _check_sizes(group.model_dump(mode="json", scim_ctx=Context.DEFAULT))


def create_group(store: Store, directory_id: int, group: Group) -> Group:
    _group_sizes(group)

    def change(session: Session) -> PushChange[Group]:
        group.id = uuid.uuid4().hex
        _stamp(group, "Group", None)
        return _group_push(session, directory_id, None, group)

    return _reread(store, directory_id, _carry(store, directory_id, change))


def replace_group(store: Store, directory_id: int, group_id: str, group: Group, if_match: str | None) -> Group:
    _group_sizes(group)

    def change(session: Session) -> PushChange[Group]:
        current = get_group(session, directory_id, group_id)
        _check_version(current, if_match)
        group.id = group_id
        return _group_change(session, directory_id, current, group)

    return _reread(store, directory_id, _carry(store, directory_id, change))


def patch_group(store: Store, directory_id: int, group_id: str, patch: PatchOp[Any], if_match: str | None) -> Group:
    def change(session: Session) -> PushChange[Group]:
        current = get_group(session, directory_id, group_id)
        patched = _patched(current, patch, if_match)
        _group_sizes(patched)
        return _group_change(session, directory_id, current, patched)

    return _reread(store, directory_id, _carry(store, directory_id, change))


def _reread(store: Store, directory_id: int, group: Group) -> Group:
    """The group as reads return it: its members as the mirror holds them, typed."""
    assert group.id is not None
    with store.read() as session:
        return get_group(session, directory_id, group.id)


def _group_change(session: Session, directory_id: int, current: Group, new: Group) -> PushChange[Group]:
    new.meta = current.meta
    if _group_body(new) == _group_body(current):
        return PushChange([], current)
    _stamp(new, "Group", current)
    return _group_push(session, directory_id, current, new)


def _group_body(group: Group) -> dict[str, Any]:
    body = group.model_dump(mode="json", scim_ctx=Context.DEFAULT)
    body["members"] = sorted((m.get("value") or "") for m in body.get("members", []))
    return body


def delete_group(store: Store, directory_id: int, group_id: str) -> None:
    def change(session: Session) -> PushChange[None]:
        _one(session, directory_id, "group", group_id)
        if _linked(session, directory_id):
            # The pulled group stays as the pull has it; only the SCIM resource goes.
            return PushChange([], None, records=[("scim_group", group_id, None)])
        events: list[SourceEvent] = [GroupRemoved(group_id)]
        return PushChange(events, None)

    _carry(store, directory_id, change)  # type: ignore[type-var]


# -- pushes to a pulled directory (`push: true`) -----------------------------------------------
#
# The pulled records are in the provider's own format, so the SCIM resources are kept beside them
# (`scim_user`, `scim_group`) and linked by `externalId` to a pulled record's id (a group, failing
# that, by its name). A push says at once only what it can safely say about a pulled record: a
# user deactivated or reactivated, a user deleted, members added to or removed from a group. The
# next pull reconciles everything, and what it reads wins.


def _pulled_user(session: Session, directory_id: int, external_id: str | None) -> tuple[str, dict[str, Any]] | None:
    if not external_id or len(external_id) > 200:
        return None
    row = load_mirror_rows(session, directory_id, "user", {external_id}).get(external_id)
    return None if row is None else (external_id, row)


def _user_push(session: Session, directory_id: int, before: ScimUser | None, user: ScimUser) -> PushChange[ScimUser]:
    event = _user_event(user)
    if not _linked(session, directory_id):
        return PushChange([event], user)
    assert user.id is not None
    record = ("scim_user", user.id, {"data": dict(event.user.data), "active": event.user.active})
    events: list[SourceEvent] = []
    pulled = _pulled_user(session, directory_id, user.external_id)
    was_active = before is None or before.active is not False
    if pulled is not None and was_active != event.user.active and pulled[1]["active"] != event.user.active:
        ext, row = pulled
        events.append(
            UserUpserted(SourceUser(ext, data=row["data"], active=event.user.active, org_unit=row.get("org_unit")))
        )
    return PushChange(events, user, records=[record])


def _pulled_group(session: Session, directory_id: int, group: Group) -> tuple[str, dict[str, Any]] | None:
    rows = load_mirror_rows(session, directory_id, "group", None)
    if group.external_id and group.external_id in rows:
        return group.external_id, rows[group.external_id]
    name = (group.display_name or "").casefold()
    named = [(ext, row) for ext, row in rows.items() if name and str(row.get("name") or "").casefold() == name]
    return named[0] if len(named) == 1 else None


def _group_push(session: Session, directory_id: int, before: Group | None, group: Group) -> PushChange[Group]:
    event = _group_event(session, directory_id, group)
    if not _linked(session, directory_id):
        return PushChange([event], group)
    assert group.id is not None
    record = (
        "scim_group",
        group.id,
        {
            "name": event.group.name,
            "data": dict(event.group.data or {}),
            "users": sorted(event.added_users),
            "groups": sorted(event.added_groups),
        },
    )
    written = before.members or [] if before is not None else []
    old = {m.value for m in written if m.value and m.type == "User"}
    added, removed = set(event.added_users) - old, old - set(event.added_users)
    pulled = _pulled_group(session, directory_id, group) if added or removed else None
    if pulled is None:
        return PushChange([], group, records=[record])
    links = {
        scim_id: str(row["data"].get("externalId") or "")
        for scim_id, row in _rows(session, directory_id, "user", added | removed).items()
    }
    known = set(load_mirror_rows(session, directory_id, "user", {ext for ext in links.values() if ext}))
    ext, row = pulled
    members = set(row.get("users") or [])
    adds = {links[u] for u in added if links.get(u) in known} - members
    removes = {links[u] for u in removed if links.get(u) in known} & members
    if not adds and not removes:
        return PushChange([], group, records=[record])
    source = SourceGroup(
        external_id=ext,
        name=str(row.get("name") or ext),
        description=row.get("description"),
        email=row.get("email"),
        dn=row.get("dn"),
        data=row.get("data"),
    )
    upsert = GroupUpserted(source, added_users=frozenset(adds), removed_users=frozenset(removes))
    return PushChange([upsert], group, records=[record])
