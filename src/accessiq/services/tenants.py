"""Which other directory already syncs the tenant a directory connects.

A second directory over the same tenant finds every person already linked to the first
one: each of its users would be an error ("belongs to a user of directory …"). The
connection test says so before the preview does.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accessiq.connectors import connector_class
from accessiq.store.tables import Directory, User

# Share of sampled source users already linked to another directory that makes it the same source.
SAME_USERS_SHARE = 0.5


def same_source(session: Session, directory: Directory, sample_ids: Collection[str] = ()) -> list[dict[str, Any]]:
    """Other directories of the provider that read the same tenant (same tenant fields) or the same
    people (most of `sample_ids`, external ids of the source's users, are already theirs).

    Each is {id, name, reason}; the reason is a sentence an administrator can check.
    """
    cls = connector_class(directory.provider)
    tenant = cls.tenant(directory.connection or {})
    found: dict[int, dict[str, Any]] = {}
    others = session.scalars(
        select(Directory)
        .where(Directory.id != directory.id, Directory.provider == directory.provider)
        .order_by(Directory.id)
    )
    for other in others:
        if tenant and cls.tenant(other.connection or {}) == tenant:
            named = ", ".join(f"{field} {value}" for field, value in tenant.items())
            found[other.id] = {"id": other.id, "name": other.name, "reason": f"it connects the same tenant ({named})"}
    if sample_ids:
        shared = session.execute(
            select(Directory.id, Directory.name, func.count(User.id))
            .join(User, User.directory_id == Directory.id)
            .where(
                Directory.id != directory.id,
                Directory.provider == directory.provider,
                User.external_id.in_(list(sample_ids)),
            )
            .group_by(Directory.id, Directory.name)
        )
        for other_id, name, count in shared:
            if other_id not in found and count >= SAME_USERS_SHARE * len(sample_ids):
                found[other_id] = {
                    "id": other_id,
                    "name": name,
                    "reason": f"{count} of the first {len(sample_ids)} users read here are already its users",
                }
    return [found[key] for key in sorted(found)]
