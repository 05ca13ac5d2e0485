"""Limits on one source record, checked as a read is folded, whatever the connector.

A record past them (an id longer than the store keeps, a value nested deeper than anyone
writes, a profile of megabytes, a number JSON cannot store, a state that is not true or false)
becomes an error on that record: the object stays as the store has it and the run goes on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

from accessiq.connectors.base import GroupUpserted, RecordRejected, SourceEvent, UserUpserted

MAX_ID = 200  # users.external_id, groups.external_id
MAX_GROUP_NAME = 400  # groups.name
MAX_TEXT = 64 * 1024  # a group's description, email or DN; a user's org unit
MAX_RECORD = 1024 * 1024  # a user's record as JSON
MAX_DEPTH = 32  # objects and lists within one another in a user's record


def checked(event: SourceEvent) -> SourceEvent:
    """The event itself, or a RecordRejected saying which limit its record passes."""
    if isinstance(event, UserUpserted):
        problem = _user_problem(event)
        external_id = event.user.external_id
        kind = "user"
    elif isinstance(event, GroupUpserted):
        problem = _group_problem(event)
        external_id = event.group.external_id
        kind = "group"
    else:
        return event
    if problem is None:
        return event
    usable = external_id if isinstance(external_id, str) and 0 < len(external_id) <= MAX_ID else None
    return RecordRejected(kind, usable, problem)


def _id_problem(external_id: Any) -> str | None:
    if not isinstance(external_id, str) or not external_id:
        return "has no usable id"
    if len(external_id) > MAX_ID:
        return f"has an id of {len(external_id)} characters, more than {MAX_ID}"
    if "\x00" in external_id:
        return "has an id with a NUL character"
    return None


def _usable_ids(ids: frozenset[Any]) -> bool:
    """Whether every id is text of 1 to MAX_ID characters without NUL (whole sets at C speed)."""
    if not all(type(i) is str for i in ids):
        return all(_id_problem(i) is None for i in ids)
    return min(map(len, ids)) > 0 and max(map(len, ids)) <= MAX_ID and "\x00" not in "".join(ids)


def _text_problem(value: Any, what: str, limit: int = MAX_TEXT) -> str | None:
    """Text the store keeps in a column: no other type, no NUL (PostgreSQL text refuses it), bounded."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"has {what} that is not text"
    if len(value) > limit:
        return f"has {what} of {len(value)} characters, more than {limit}"
    if "\x00" in value:
        return f"has {what} with a NUL character"
    return None


def _user_problem(event: UserUpserted) -> str | None:
    user = event.user
    problem = _id_problem(user.external_id) or _text_problem(user.org_unit, "an org unit")
    if problem:
        return problem
    if not isinstance(user.active, bool):
        return f"has an enabled state that is not true or false: {str(user.active)[:40]!r}"
    if not isinstance(user.data, Mapping):
        return "is not an object"
    depth, plain = _walk(user.data)
    if depth > MAX_DEPTH:
        return f"nests values more than {MAX_DEPTH} levels deep"
    try:
        size = _json_size(user.data, plain)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"holds a value that cannot be stored ({str(exc)[:80]})"
    if size > MAX_RECORD:
        return f"is {size // 1024} KiB as JSON, more than {MAX_RECORD // 1024} KiB"
    return None


def _group_problem(event: GroupUpserted) -> str | None:
    group = event.group
    problem = _id_problem(group.external_id)
    if problem:
        return problem
    if not isinstance(group.name, str) or not group.name.strip():
        return "has no name"
    problem = _text_problem(group.name, "a name", MAX_GROUP_NAME)
    for field, what in (("description", "a description"), ("email", "an email"), ("dn", "a DN")):
        problem = problem or _text_problem(getattr(group, field), what)
    if problem:
        return problem
    members = event.added_users | event.removed_users | event.added_groups | event.removed_groups
    if members and not _usable_ids(members):
        return f"names a member whose id is not text of 1 to {MAX_ID} characters"
    return None


_PLAIN = frozenset((str, int, bool, type(None)))
_FLAT = frozenset((str, bool, type(None)))  # plain values of any size
_TEXT = frozenset((str,))


def _walk(value: Any) -> tuple[int, bool]:
    """How deep objects and lists nest (stopping past the limit, without recursion), and whether
    the value is plain JSON: dicts with text keys, lists, text, finite floats, 64-bit integers."""
    if type(value) is dict and _FLAT.issuperset(map(type, value.values())):  # most records: one level
        return 1, _TEXT.issuperset(map(type, value))
    deepest, plain, stack = 0, True, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list or kind is tuple or isinstance(item, Mapping):
            if depth + 1 > MAX_DEPTH:
                return depth + 1, False
            deepest = max(deepest, depth + 1)
            children = item.values() if isinstance(item, Mapping) else item
            if (kind is not dict and kind is not list) or (kind is dict and not all(type(k) is str for k in item)):
                plain = False
            for child in children:
                child_kind = type(child)
                if child_kind in _PLAIN:
                    if child_kind is int and not -(2**63) <= child < 2**64:
                        plain = False
                elif child_kind is float:
                    plain = plain and math.isfinite(child)
                else:
                    stack.append((child, depth + 1))
        elif kind not in _PLAIN and not (kind is float and math.isfinite(item)):
            plain = False
    return deepest, plain


def _json_size(value: Any, plain: bool) -> int:
    """Bytes of the record as JSON; raises for what JSON cannot hold (NaN, sets, ...)."""
    if plain:  # orjson is exact for these, and fast
        try:
            return len(orjson.dumps(value))
        except orjson.JSONEncodeError:  # text that is no UTF-8 (a lone surrogate): json escapes it
            pass
    return len(json.dumps(dict(value), allow_nan=False, default=_refuse).encode())


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")
