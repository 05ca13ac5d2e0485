"""Group references, nested-group flattening and the user filter's scope tests."""

from __future__ import annotations

from collections.abc import Mapping

from accessiq.sync.source import MirrorGroup


def resolve_group_ref(
    ref: str, groups: Mapping[str, MirrorGroup], pins: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(external id, None) or (None, why not). A pinned reference stays on its group through renames."""
    pinned = pins.get(ref)
    if pinned is not None:
        if pinned in groups:
            return pinned, None
        return None, f"group {ref!r} (id {pinned}) no longer exists in the directory"
    if ref in groups:
        return ref, None
    wanted = ref.casefold()
    matches = sorted(
        external_id
        for external_id, entry in groups.items()
        if entry.group.name.casefold() == wanted
        or (entry.group.email or "").casefold() == wanted
        or _normalize_dn(entry.group.dn or "") == _normalize_dn(ref)
    )
    if len(matches) == 1:
        return matches[0], None
    if not matches:
        return None, f"no group matches {ref!r} by id, name, email or DN"
    return None, f"{len(matches)} groups match {ref!r} ({', '.join(matches[:5])}); use the group's id"


def transitive_users(group_id: str, groups: Mapping[str, MirrorGroup]) -> set[str]:
    """Users in a group or any group nested in it, at any depth; cycles are tolerated."""
    users: set[str] = set()
    seen = {group_id}
    pending = [group_id]
    while pending:
        entry = groups.get(pending.pop())
        if entry is None:
            continue
        users |= entry.users
        for child in entry.groups:
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return users


def in_org_units(org_unit: str | None, units: list[str]) -> bool:
    """LDAP DNs match the base and below; Google OU paths (`/Sales`) match the path and below."""
    if not org_unit:
        return False
    for unit in units:
        if unit.startswith("/"):
            base = unit.rstrip("/")
            if org_unit == base or org_unit.startswith(base + "/"):
                return True
        else:
            dn, base = _normalize_dn(org_unit), _normalize_dn(unit)
            if dn == base or dn.endswith("," + base):
                return True
    return False


def _normalize_dn(dn: str) -> str:
    return ",".join(part.strip() for part in dn.split(",")).casefold()
