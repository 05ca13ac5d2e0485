"""Running a sync in a test: request it, carry it to its end in this process, read it back."""

from __future__ import annotations

from typing import Any

from accessiq.services import runs
from accessiq.store.database import Store
from accessiq.store.tables import Directory


def sync(store: Store, directory_id: int, *, full: bool = False) -> dict[str, Any]:
    """Request a run, carry it to its end here, and return it as the API shows it."""
    with store.transaction() as session:
        run, _ = runs.request_sync(session, session.get_one(Directory, directory_id), full=full)
        run_id = run.id
    runs.run_now(store, run_id)
    with store.transaction() as session:
        return runs.run_json(session, runs.get_run(session, run_id))
