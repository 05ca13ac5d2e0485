"""Data for the API tests: a small snapshot company and a directory document over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def seed(snapshot: Any, users: int = 5) -> Path:
    """A small company: `users` people, an Engineering group nesting Platform."""
    for i in range(users):
        snapshot.user(
            f"u{i}", f"user{i}@example.com", department="Engineering" if i % 2 else "Sales", location={"city": "Lisbon"}
        )
    snapshot.group("g-platform", "Platform", members=["u1"])
    snapshot.group("g-eng", "Engineering", members=["u1", "u3", "g-platform"])
    snapshot.group("g-sales", "Sales", members=["u0", "u2", "u4"])
    return snapshot.write()


def directory_document(path: Path, name: str = "Acme HR", **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "file",
        "connection": {"path": str(path)},
        "settings": {"default_organization": "acme", **settings},
        "group_mappings": [{"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}],
    }
