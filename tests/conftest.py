"""Shared fixtures: a migrated store on SQLite and on PostgreSQL, snapshot helpers, a Samba AD DC.

Every test that takes `store` runs once per backend. PostgreSQL is at
ACCESSIQ_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test); each
xdist worker gets a database of its own. With CI=true a missing PostgreSQL fails
the run instead of skipping.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, event, text

from accessiq.config import Settings
from accessiq.store.database import Store, open_store
from accessiq.store.tables import Base, Role

from .connectors.ad_kit import AdKit, SambaDC, samba_dc

POSTGRES_ADMIN_URL = os.environ.get("ACCESSIQ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_KEY = "hQv0Zb4m6n8V2rW3u9i1hJkL5mN7pQ0sT2vX4yZ6a8c="


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _admin(statement: str) -> None:
    engine = create_engine(_psycopg_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def _postgres_database(name: str) -> str | None:
    """Create (afresh) a test database; None when PostgreSQL is not there."""
    try:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        if IN_CI:
            raise RuntimeError(
                f"PostgreSQL is required in CI and not reachable at {POSTGRES_ADMIN_URL}: {exc}"
            ) from exc
        return None
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_url(worker_id: str) -> Iterator[str | None]:
    """A database of this test process's own (named by worker and pid, so parallel runs never meet)."""
    name = f"accessiq_test_{worker_id}_{os.getpid()}"
    url = _postgres_database(name)
    yield url
    if url is not None:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_store(
    postgres_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store | None]:
    if postgres_url is None:
        yield None
        return
    store = open_store(
        Settings(database_url=postgres_url, secret_key=TEST_KEY, data_dir=tmp_path_factory.mktemp("pg"))
    )
    yield store
    store.dispose()


def _reset(store: Store) -> None:
    """Empty every table but the built-in roles, for the next test."""
    with store.transaction() as session:
        if store.dialect == "postgresql":
            names = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "roles")
            session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name != "roles":
                    session.execute(table.delete())
        session.execute(delete(Role).where(Role.builtin.is_(False)))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    if request.param == "sqlite":
        sqlite = open_store(Settings(data_dir=tmp_path, secret_key=TEST_KEY))
        yield sqlite
        sqlite.dispose()
        return
    pg: Store | None = request.getfixturevalue("postgres_store")
    if pg is None:
        pytest.skip("PostgreSQL is not reachable (set CI=true to make this a failure)")
    _reset(pg)
    yield pg


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """Only SQLite: for tests about the engine's logic rather than the backend."""
    sqlite = open_store(Settings(data_dir=tmp_path, secret_key=TEST_KEY))
    yield sqlite
    sqlite.dispose()


class Snapshot:
    """A file-provider snapshot a test edits and writes back between syncs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.users: list[dict[str, Any]] = []
        self.groups: list[dict[str, Any]] = []

    def user(self, ext: str, email: str | None = None, **fields: Any) -> dict[str, Any]:
        record = {
            "id": ext,
            "email": email or f"{ext}@example.com",
            "given_name": ext.title(),
            "family_name": "Doe",
            "display_name": f"{ext.title()} Doe",
            "username": ext,
            **fields,
        }
        self.users = [u for u in self.users if u.get("id") != ext] + [record]
        return record

    def group(
        self, ext: str, name: str | None = None, members: list[str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        record = {"id": ext, "name": name or ext, "members": members or [], **fields}
        self.groups = [g for g in self.groups if g["id"] != ext] + [record]
        return record

    def find(self, ext: str) -> dict[str, Any]:
        return next(r for r in self.users + self.groups if r.get("id") == ext)

    def remove(self, ext: str) -> None:
        self.users = [u for u in self.users if u["id"] != ext]
        self.groups = [g for g in self.groups if g["id"] != ext]
        for g in self.groups:
            g["members"] = [m for m in g["members"] if m != ext]

    def write(self) -> Path:
        self.path.write_text(json.dumps({"users": self.users, "groups": self.groups}))
        return self.path


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    return Snapshot(tmp_path / "snapshot.json")


@pytest.fixture(scope="session")
def samba_dc_session() -> Iterator[SambaDC]:
    """One Samba AD DC for the whole session (port 389 is fixed), under a lock shared by all workers."""
    with samba_dc() as dc:
        yield dc


@pytest.fixture
def ad(samba_dc_session: SambaDC) -> Iterator[AdKit]:
    """An organizational unit of this test's own on the DC, seeded with a few users and groups."""
    kit = AdKit(samba_dc_session).seed()
    try:
        yield kit
    finally:
        kit.close()


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the store runs meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
