"""The bundled demo directory: a JSON snapshot of a small company, connected and synced in one step."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from accessiq.sandbox import DemoSandbox
from accessiq.services import directories as dirs
from accessiq.services import identity, providers, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.services.providers import Provider
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
    return _connect_and_sync(store, demo_document())


def _connect_and_sync(store: Store, document: dict[str, object]) -> int:
    with store.transaction() as session:
        for slug, name in ORGANIZATIONS.items():
            if session.scalar(select(Organization.id).where(Organization.slug == slug)) is None:
                identity.create_organization(session, slug, name)
        # The demo is set up on the server by its operator (`accessiq demo`, `serve --demo`).
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        run, _ = runs.request_sync(session, directory, trigger="manual")
        run_id = run.id
    runs.run_now(store, run_id)
    return run_id


def start_sandbox_demos(store: Store) -> list[tuple[Provider, DemoSandbox, int]]:
    """Start every provider's demo sandbox on a loopback port, connect a directory to each, sync it once.

    Each sandbox lives as long as its server; the same seed gives the same directory on every
    start, so a restarted demo re-reads it in full and finds it unchanged.
    """
    started: list[tuple[Provider, DemoSandbox, int]] = []
    for provider in providers.catalog():
        spec = provider.load_sandbox() if provider.available else None
        if spec is None or spec.start_demo is None:
            continue
        demo = spec.start_demo()
        started.append((provider, demo, _connect_and_sync(store, demo.document)))
    return started
