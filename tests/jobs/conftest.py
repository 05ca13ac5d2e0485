"""Fixtures for the queue, scheduler and worker tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jobkit import TEST_KEY, Processes
from sqlalchemy import text

from accessiq.config import Settings
from accessiq.store.database import Store, open_store
from accessiq.store.tables import Base


@pytest.fixture
def pg_store(postgres_store: Store | None) -> Iterator[Store]:
    """The per-xdist-worker PostgreSQL store, emptied; skipped (failed in CI) without PostgreSQL."""
    if postgres_store is None:
        pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
    with postgres_store.transaction() as session:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "roles")
        session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        session.execute(text("DELETE FROM roles WHERE NOT builtin"))
    yield postgres_store


@pytest.fixture
def sqlite_file_store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store in tmp_path that subprocesses can open too (same data dir and key)."""
    store = open_store(Settings(data_dir=tmp_path, secret_key=TEST_KEY))
    yield store
    store.dispose()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Processes]]:
    made: list[Processes] = []

    def make(env: dict[str, str]) -> Processes:
        procs = Processes(env, tmp_path)
        made.append(procs)
        return procs

    yield make
    for procs in made:
        procs.close()
