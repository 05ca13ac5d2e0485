"""The bundled demo directory: a JSON snapshot of a small company, connected and synced in one step."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.store.database import Store
from accessiq.store.tables import Organization
from accessiq.sync.document import validate_document

SNAPSHOT = Path(__file__).with_name("snapshot.json")
ORGANIZATIONS = {"demo": "Demo Company", "demo-engineering": "Demo Engineering", "demo-it": "Demo IT"}


def demo_document(snapshot: Path = SNAPSHOT) -> dict[str, object]:
    return {
        "name": "Demo",
        "provider": "file",
        "connection": {"path": str(snapshot)},
        "settings": {
            "frequency": "1h",
            "default_organization": "demo",
            "default_role": "member",
            "attribute_mapping": {"department": "department", "title": "title", "city": "location.city"},
            "safety": {"max_deactivations": 10, "max_deactivation_percent": 25},
        },
        "group_mappings": [
            {"source_group": "Engineering", "organization": "demo-engineering", "role": "member"},
            {"source_group": "Platform", "organization": "demo-engineering", "role": "admin"},
            {"source_group": "IT Admins", "organization": "demo", "role": "admin"},
        ],
    }


def setup_demo(store: Store) -> int:
    """Create the demo organizations and directory (idempotent) and run a sync; returns the run id."""
    with store.transaction() as session:
        for slug, name in ORGANIZATIONS.items():
            if session.scalar(select(Organization.id).where(Organization.slug == slug)) is None:
                identity.create_organization(session, slug, name)
        directory, _ = dirs.apply_document(session, store.secrets, validate_document(demo_document()))
        run, _ = runs.request_sync(session, directory, trigger="manual")
        run_id = run.id
    runs.run_now(store, run_id)
    return run_id
