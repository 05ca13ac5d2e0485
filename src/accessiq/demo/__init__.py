"""The bundled demo directory: a JSON snapshot of a small company, connected and synced in one step."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
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


def entra_demo_document(sandbox: EntraSandbox, url: str) -> dict[str, object]:
    return {
        "name": "Contoso (Entra ID sandbox)",
        "provider": "entra",
        "connection": {
            "tenant_id": sandbox.tenant_domain,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "authority_url": url,
            "graph_url": url,
        },
        "settings": {
            "frequency": "15m",
            "default_organization": "demo",
            "attribute_mapping": {"department": "department", "title": "jobTitle"},
        },
    }


def start_entra_demo(store: Store, users: int = 200, groups: int = 20) -> tuple[SandboxServer, int]:
    """Serve a Graph sandbox on a loopback port, connect a directory to it and sync it once.

    The sandbox lives as long as the returned server; the same seed gives the same tenant on
    every start, so a restarted demo re-reads it in full and finds it unchanged.
    """
    sandbox = EntraSandbox(users, groups, seed=0)
    server = SandboxServer(create_app(sandbox)).start()
    return server, _connect_and_sync(store, entra_demo_document(sandbox, server.url))
