"""Active Directory quirks for the `ldap` provider (reference/provider-apis.md §4.2-4.6).

Identity is `objectGUID` in its canonical (mixed-endian) string form, the disabled
state is bit 0x2 of `userAccountControl`, large multi-valued attributes arrive in
ranges (`member;range=0-1499`), and a user's primary group is not in any group's
`member` list: it is named by `primaryGroupID`, the last part of that group's SID.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Callable, Mapping
from typing import Any

ACCOUNTDISABLE = 0x2
SHOW_DELETED_OID = "1.2.840.113556.1.4.417"
USER_FILTER = "(&(objectCategory=person)(objectClass=user))"
GROUP_FILTER = "(objectClass=group)"
# Read for every user and group besides what the mapping asks for.
USER_ATTRIBUTES = ("objectGUID", "userAccountControl", "primaryGroupID", "uSNChanged")
# Members are asked for by range, as AD serves them past 1,500 values anyway: then every DC,
# Samba included, answers with a range (`member;range=0-*` when that is all) and the rest is
# read by complete_ranges.
MEMBER_RANGE = "member;range=0-1499"
GROUP_ATTRIBUTES = ("objectGUID", "objectSid", MEMBER_RANGE, "uSNChanged")

_RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)


def guid_string(raw: bytes) -> str:
    """The canonical string of a 16-byte objectGUID: `str(uuid.UUID(bytes_le=raw))`."""
    return str(uuid.UUID(bytes_le=raw))


def guid_filter_value(guid: str) -> str:
    """A GUID string as a filter assertion on objectGUID: its raw bytes, each escaped as \\hh."""
    return "".join(f"\\{byte:02x}" for byte in uuid.UUID(guid).bytes_le)


def sid_string(raw: bytes) -> str:
    """`S-1-5-21-…-RID` from a binary objectSid."""
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack(f"<{count}I", raw[8 : 8 + 4 * count])
    return "-".join(["S", str(revision), str(authority), *(str(s) for s in subs)])


def sid_rid(raw: bytes) -> int | None:
    """The relative id (last sub-authority) of a binary SID: what primaryGroupID refers to; None
    for bytes that are no SID with a sub-authority."""
    if len(raw) < 12 or raw[1] == 0 or len(raw) < 8 + 4 * raw[1]:
        return None
    return int(sid_string(raw).rsplit("-", 1)[1])


def is_disabled(user_account_control: bytes | str | None) -> bool:
    """True when the ACCOUNTDISABLE bit is set."""
    if user_account_control is None:
        return False
    try:
        text = user_account_control.decode() if isinstance(user_account_control, bytes) else user_account_control
        # A 32-bit flag word: anything longer is not one (and int() of thousands of digits is slow).
        return len(text) <= 12 and bool(int(text) & ACCOUNTDISABLE)
    except (ValueError, UnicodeDecodeError):
        return False


def ranged_attributes(attributes: Mapping[str, list[bytes]]) -> dict[str, tuple[int, str]]:
    """{attribute: (next low, ranged key)} for each attribute the server cut short (`member;range=0-1499`)."""
    cut: dict[str, tuple[int, str]] = {}
    for key in attributes:
        match = _RANGE.match(key)
        if match and match["high"] != "*":
            cut[match["name"]] = (int(match["high"]) + 1, key)
    return cut


def complete_ranges(
    dn: str,
    attributes: dict[str, list[bytes]],
    fetch: Callable[[str, str], Mapping[str, list[bytes]]],
) -> dict[str, list[bytes]]:
    """`attributes` with every ranged attribute read to its end, under its plain name.

    `fetch(dn, "member;range=1500-*")` reads one more range of one entry. A client
    that stops at the first range sees a group of 1,500 and revokes the rest, so
    this loops until the server answers with a range ending in `*`.
    """
    result = {k: v for k, v in attributes.items() if not _RANGE.match(k)}
    for key, values in attributes.items():
        match = _RANGE.match(key)
        if not match:
            continue
        name, collected, high = match["name"], list(values), match["high"]
        while high != "*":
            answer = fetch(dn, f"{name};range={int(high) + 1}-*")
            chunk = next(
                ((k, v) for k, v in answer.items() if (m := _RANGE.match(k)) and m["name"].lower() == name.lower()),
                None,
            )
            if chunk is None:
                break
            collected.extend(chunk[1])
            high = _RANGE.match(chunk[0])["high"]  # type: ignore[index]
        result[name] = collected
    return result


def primary_group_members(users: Mapping[str, Any], groups_by_rid: Mapping[int, str]) -> dict[str, set[str]]:
    """{group id: user ids} from each user's primaryGroupID (users maps id -> primaryGroupID)."""
    members: dict[str, set[str]] = {}
    for user_id, rid in users.items():
        try:
            group = groups_by_rid.get(int(rid))
        except (TypeError, ValueError):
            continue
        if group is not None:
            members.setdefault(group, set()).add(user_id)
    return members
