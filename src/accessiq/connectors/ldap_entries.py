"""Entries of the `ldap` provider as values: attributes, DNs, disabled markers, change positions.

Pure functions over what python-ldap returns (attribute name -> list of bytes),
kept apart from the connector so they read and test on their own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class SyncAnswer:
    """What one syncrepl refreshOnly search said: changed and deleted entry ids, and the new cookie."""

    changed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    cookie: str | None = None
    present_phase: bool = False
    refresh_deletes: bool = True

    def entry(self, state: str, entry_uuid: str) -> None:
        if state == "delete":
            self.deleted.add(entry_uuid.lower())
        elif state == "present":
            self.present_phase = True
        else:
            self.changed.add(entry_uuid.lower())

    def info(self, message: Any) -> None:
        if message.newcookie is not None:
            self.cookie = message.newcookie
        for phase in (message.refreshDelete, message.refreshPresent):
            if phase is not None:
                self.cookie = phase.get("cookie") or self.cookie
        if message.refreshPresent is not None:
            self.present_phase = True
        if message.syncIdSet is not None:
            ids = {str(u).lower() for u in message.syncIdSet["syncUUIDs"]}
            if message.syncIdSet["refreshDeletes"]:
                self.deleted |= ids
            else:
                self.present_phase = True
            self.cookie = message.syncIdSet.get("cookie") or self.cookie


def get_values(entry: Mapping[str, list[bytes]], name: str) -> list[bytes]:
    """An attribute's values, whatever case the server spelled its name in."""
    if name in entry:
        return entry[name]
    lower = name.lower()
    return next((v for k, v in entry.items() if k.lower() == lower), [])


def texts(values: list[bytes]) -> list[str] | None:
    """UTF-8 values as text; None for binary ones (photos, certificates, SIDs)."""
    try:
        return [v.decode("utf-8") for v in values]
    except UnicodeDecodeError:
        return None


def first_text(entry: Mapping[str, list[bytes]], name: str) -> str | None:
    found = texts(get_values(entry, name))
    return found[0] if found else None


def text0(entry: Mapping[str, list[bytes]], name: str) -> str:
    values = get_values(entry, name)
    return values[0].decode("utf-8", "replace") if values else ""


def openldap_disabled(entry: Mapping[str, list[bytes]]) -> bool:
    """Disabled as OpenLDAP deployments mark it: a ppolicy lock, an expired shadow account, or nsAccountLock."""
    if get_values(entry, "pwdAccountLockedTime"):
        return True
    if text0(entry, "nsAccountLock").lower() == "true":
        return True
    expire = text0(entry, "shadowExpire")
    # Days since 1970 in ASCII digits; str.isdigit() also takes digits int() refuses (superscripts).
    if re.fullmatch(r"-?[0-9]{1,9}", expire) and int(expire) >= 0:
        today = (datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days
        return int(expire) <= today
    return False


def entry_digest(entry: Mapping[str, list[bytes]]) -> str:
    """A short fingerprint of an entry's attributes: tells whether it changed within one second."""
    text = repr(sorted((k.lower(), sorted(v)) for k, v in entry.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def timestamp_position(
    stamps: list[tuple[str, str, str]], *, since: str | None = None, seen: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The newest modifyTimestamp and a fingerprint of each entry read at exactly that second.

    modifyTimestamp has whole seconds: an entry changed again within the second the
    last run read it has the same timestamp, and only its fingerprint tells.
    """
    newest = max([s for s, _, _ in stamps if s] + ([since] if since else []), default=None)
    at_newest = dict(seen or {}) if newest == since else {}
    at_newest.update({i: d for s, i, d in stamps if s == newest})
    return {"since": newest, "seen": dict(sorted(at_newest.items()))}


def is_stale(entry: Mapping[str, list[bytes]], since: str, external_id: str, seen: Mapping[str, str]) -> bool:
    """True for an entry the last run already reported, unchanged, at the cursor's very second."""
    return text0(entry, "modifyTimestamp") == since and seen.get(external_id) == entry_digest(entry)


def and_filters(*filters: str) -> str:
    parts = [f for f in filters if f]
    return parts[0] if len(parts) == 1 else "(&" + "".join(parts) + ")"


def or_filters(*filters: str) -> str:
    return "(|" + "".join(filters) + ")"


# A DN whose canonical spelling is its lowercase: plain ASCII attribute types and values, no
# escapes, no spaces around separators. Most DNs are; a directory read normalizes every member DN.
_SIMPLE_RDN = r"[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9._@-]+(?: [A-Za-z0-9._@-]+)*"
_SIMPLE_DN = re.compile(rf"{_SIMPLE_RDN}(?:,{_SIMPLE_RDN})*")


def normalize_dn(dn: str) -> str:
    """A DN in one spelling: attribute types and values case-folded, spacing and escaping canonical."""
    if _SIMPLE_DN.fullmatch(dn):
        return dn.lower()
    return parsed_normal_dn(dn)


def parsed_normal_dn(dn: str) -> str:
    """`normalize_dn` by parsing the DN (python-ldap's str2dn and dn2str), whatever its spelling."""
    try:
        import ldap.dn

        return ldap.dn.dn2str([[(t.lower(), v.casefold(), f) for t, v, f in rdn] for rdn in ldap.dn.str2dn(dn)])
    except Exception:  # an unparsable member value: compare it as text
        return ",".join(p.strip() for p in dn.split(",")).casefold()


def first_rdn(dn: str) -> tuple[str, str] | None:
    """The attribute type and value of a DN's first RDN (its first one, when multi-valued)."""
    try:
        import ldap.dn

        attribute, value, _ = ldap.dn.str2dn(dn)[0][0]
        return str(attribute), str(value)
    except Exception:  # not a DN
        return None


def rdn_value(dn: str) -> str:
    try:
        import ldap.dn

        return str(ldap.dn.str2dn(dn)[0][0][1])
    except Exception:
        return dn
