"""What the crash suite needs: a directory whose next sync changes every table, a canonical dump of
the synced state, and a way to put the database back to the state before the run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from accessiq.config import Settings
from accessiq.services import directories as dirs
from accessiq.services import identity
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store, open_store
from accessiq.sync.document import validate_document
from tests.jobs.jobkit import TEST_KEY


def corp_snapshot(users: int, *, after: bool) -> dict[str, Any]:
    """The source before (`after=False`) or after a day of changes that touch every synced table.

    After: a tenth of the people left, one in 25 is disabled, one in 3 changed department, 40%
    more joined, one group was deleted and one created, a quarter of the people changed group.
    """
    people: list[dict[str, Any]] = []
    stay = int(users * 0.9) if after else users
    joined = int(users * 0.4) if after else 0
    for i in [*range(stay), *range(users, users + joined)]:
        department = f"Dept{(i + (1 if after and i % 3 == 0 else 0)) % 7}"
        people.append(
            {
                "id": f"u{i}",
                "email": f"person{i}@corp.example.com",
                "username": f"person{i}",
                "given_name": f"Given{i}",
                "family_name": f"Family{i % 97}",
                "display_name": f"Given{i} Family{i % 97}",
                "active": not (after and i % 25 == 0),
                "department": department,
                "location": {"city": f"City{i % 13}"},
            }
        )
    count = 10
    groups: list[dict[str, Any]] = []
    for k in range(count + (1 if after else 0)):
        if after and k == count - 1:
            continue  # deleted in the source
        members = [
            p["id"]
            for p in people
            if ((n + 1) % count if after and (n := int(p["id"][1:])) % 4 == 0 else int(p["id"][1:]) % count) == k
        ]
        groups.append({"id": f"g{k}", "name": f"Team {k}", "description": f"team {k}", "members": members})
    groups.append({"id": "all", "name": "Everyone", "members": [g["id"] for g in groups]})
    return {"users": people, "groups": groups}


def add_corp_directory(store: Store, path: Path) -> int:
    """Organizations, and a `file` directory with a default organization and two group mappings."""
    document = {
        "name": "Corp",
        "provider": "file",
        "connection": {"path": str(path)},
        "settings": {
            "default_organization": "acme",
            "default_role": "member",
            "attribute_mapping": {"department": "department", "city": "location.city"},
            # The next run deactivates a tenth of the people: the guard must not hold it.
            "safety": {
                "max_deactivations": 1_000_000,
                "max_deactivation_percent": 100,
                "max_group_deletions": 1_000_000,
                "max_group_deletion_percent": 100,
                "max_membership_removals": 1_000_000,
                "max_membership_removal_percent": 100,
            },
        },
        "group_mappings": [
            {"source_group": "Team 0", "organization": "acme-eng", "role": "admin"},
            {"source_group": "Team 1", "organization": "acme-eng", "role": "member"},
            {"source_group": "Everyone", "organization": "acme-all", "role": "viewer"},
        ],
    }
    with store.transaction() as session:
        for slug in ("acme", "acme-eng", "acme-all"):
            identity.create_organization(session, slug)
    with store.transaction() as session:
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


# -- the state a sync writes, dumped ----------------------------------------------------------

# Canonical: keyed by what the source names (external ids, emails, slugs), so that two stores in
# the same synced state dump alike whatever row ids their sequences handed out.
_CANONICAL = {
    "users": """
        SELECT u.external_id, u.email, u.email_key, u.username, u.given_name, u.family_name, u.display_name,
               u.status, u.deactivated_by, u.attributes
        FROM users u ORDER BY u.email_key""",
    "groups": """
        SELECT g.external_id, g.name, g.description FROM groups g ORDER BY g.external_id""",
    "group_memberships": """
        SELECT g.external_id, u.email_key FROM group_memberships m
        JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id
        ORDER BY g.external_id, u.email_key""",
    "organization_memberships": """
        SELECT o.slug, u.email_key, r.name, m.origin FROM organization_memberships m
        JOIN organizations o ON o.id = m.organization_id JOIN users u ON u.id = m.user_id
        JOIN roles r ON r.id = m.role_id
        ORDER BY o.slug, u.email_key, m.origin""",
    "mirror": """
        SELECT kind, external_id, hash, email_key, data FROM source_objects ORDER BY kind, external_id""",
    "cursor": """
        SELECT directory_id, value, basis FROM cursors ORDER BY directory_id""",
    "group_pins": """
        SELECT id, group_pins FROM directories ORDER BY id""",
}
# Exact: the same plus row ids and every timestamp a sync writes. A run that applied nothing
# leaves this byte for byte as it was.
_EXACT = {
    "user_rows": "SELECT id, email_key, created_at, updated_at FROM users ORDER BY id",
    "group_rows": "SELECT id, external_id, created_at FROM groups ORDER BY id",
    "membership_rows": "SELECT group_id, user_id FROM group_memberships ORDER BY group_id, user_id",
    "grant_rows": "SELECT id, organization_id, user_id, role_id, origin, created_at FROM organization_memberships"
    " ORDER BY id",
    "cursor_times": "SELECT directory_id, updated_at, last_full_sync_at FROM cursors ORDER BY directory_id",
}


def _value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:  # SQLite hands JSON columns back as text
            return json.loads(value)
        except ValueError:
            return value
    return value if isinstance(value, int | float | bool | dict | list) or value is None else str(value)


def _normalize(value: Any) -> Any:
    return json.loads(json.dumps(_value(value), sort_keys=True, default=str))


def dump(store: Store, *, exact: bool = False) -> dict[str, list[list[Any]]]:
    """The synced state (users, groups, memberships, grants, mirror, cursor), canonical or exact."""
    queries = {**_CANONICAL, **(_EXACT if exact else {})}
    with store.engine.connect() as connection:
        return {
            name: [[_normalize(v) for v in row] for row in connection.execute(text(query))]
            for name, query in queries.items()
        }


def digest(state: dict[str, list[list[Any]]]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def differences(a: dict[str, list[list[Any]]], b: dict[str, list[list[Any]]]) -> dict[str, int]:
    """Per table, how many rows one dump has that the other has not (for failure messages)."""
    out = {}
    for name in a:
        left = {json.dumps(r) for r in a[name]}
        right = {json.dumps(r) for r in b.get(name, [])}
        if left != right:
            out[name] = len(left ^ right)
    return out


def integrity(store: Store) -> str:
    """SQLite's `PRAGMA integrity_check` verdict ("ok" when sound)."""
    database = store.engine.url.database
    assert database is not None
    probe = sqlite3.connect(database)
    try:
        return "; ".join(str(row[0]) for row in probe.execute("PRAGMA integrity_check"))
    finally:
        probe.close()


# -- saving and restoring the whole database --------------------------------------------------


@dataclass
class Backend:
    """One database the crash suite saves once and restores before every iteration."""

    dialect: str
    url: str
    data_dir: Path
    admin_url: str = ""
    name: str = ""

    def open(self) -> Store:
        return open_store(Settings(database_url=self.url, secret_key=TEST_KEY, data_dir=self.data_dir))

    @property
    def _file(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))

    def save(self, store: Store) -> None:
        """Keep the current state as the one `restore` brings back; `store` is disposed."""
        store.dispose()
        if self.dialect == "sqlite":
            with sqlite3.connect(self._file) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(self._file, self._file.with_suffix(".saved"))
            return
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}_saved" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.name}_saved" TEMPLATE "{self.name}"')

    def restore(self) -> None:
        """Put the saved state back; no process may be using the database."""
        if self.dialect == "sqlite":
            for suffix in ("-wal", "-shm"):
                Path(f"{self._file}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self._file.with_suffix(".saved"), self._file)
            return
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.name}_saved"')

    def drop(self) -> None:
        if self.dialect == "postgresql":
            for name in (self.name, f"{self.name}_saved"):
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        engine = create_engine(
            self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def busy_sessions(self) -> int:
        """PostgreSQL: sessions on this database inside a transaction (a killed client's, until it ends)."""
        engine = create_engine(self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as connection:
                return int(
                    connection.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = :name"
                            " AND state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid()"
                        ),
                        {"name": self.name},
                    ).scalar_one()
                )
        finally:
            engine.dispose()


class Trickle:
    """Serves a snapshot through a named pipe, to each reader in turn, slowly or at once.

    A slow source: a run reading it stays in its read for `seconds`, so a kill can land at any
    point of the read. A reader that dies mid-read is let go and the next one served afresh.
    """

    def __init__(self, path: Path, document: dict[str, Any], seconds: float, chunks: int = 40) -> None:
        self.path = path
        self.data = json.dumps(document).encode()
        self.seconds = seconds
        self.chunks = chunks
        self.slow = True
        self.served = 0
        self._stop = threading.Event()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._serve, name="trickle", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _writer(self) -> int | None:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nobody reads the pipe yet
                return None
            raise

    def _serve(self) -> None:
        while not self._stop.is_set():
            fd = self._writer()
            if fd is None:
                time.sleep(0.005)
                continue
            os.set_blocking(fd, True)
            size = -(-len(self.data) // self.chunks)
            pause = self.seconds / self.chunks if self.slow else 0.0
            try:
                for start in range(0, len(self.data), size):
                    os.write(fd, self.data[start : start + size])
                    if pause:
                        time.sleep(pause)
                self.served += 1
            except BrokenPipeError:
                pass  # the reader was killed mid-read
            finally:
                os.close(fd)
            # Let the reader see the end of the file before the next writer opens the pipe.
            time.sleep(0.05)
