"""The store itself: migrations, built-in roles, constraints, timestamps and secrets, on both backends."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from accessiq.errors import ConfigurationError
from accessiq.store.bulk import insert_many
from accessiq.store.crypto import SecretBox, load_or_create_key
from accessiq.store.database import SCHEMA_HEAD, Store, alembic_config
from accessiq.store.tables import Directory, Group, GroupMembership, Role, SyncRun, User

from ..conftest import TEST_KEY


def test_migrations_create_every_table_and_the_ranked_builtin_roles(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "organizations",
        "roles",
        "users",
        "groups",
        "group_memberships",
        "organization_memberships",
        "directories",
        "group_mappings",
        "sync_runs",
        "run_changes",
        "run_errors",
        "cursors",
        "source_objects",
    } <= tables
    with store.transaction() as session:
        roles = [(r.name, r.builtin) for r in session.scalars(select(Role).order_by(Role.rank.desc()))]
    assert roles == [("owner", True), ("admin", True), ("member", True), ("viewer", True)]
    mirror_indexes = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("source_objects")}
    assert mirror_indexes["ix_source_objects_email_key"] == ["directory_id", "kind", "email_key"]


def test_the_schema_head_a_store_is_checked_against_is_the_newest_migration(store: Store) -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [SCHEMA_HEAD]
    assert store.schema_is_current()
    with store.transaction() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    assert not store.schema_is_current()
    with store.transaction() as session:
        session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": SCHEMA_HEAD})
    assert store.schema_is_current()


def test_memberships_survive_migration_0010_both_ways_and_keep_no_rowid_on_sqlite(store: Store) -> None:
    with store.transaction() as session:
        session.add_all([User(id=7, email="a@example.com", email_key="a@example.com"), Group(id=3, name="G")])
        session.flush()
        session.add(GroupMembership(group_id=3, user_id=7))

    def memberships() -> list[tuple[int, int]]:
        with store.read() as session:
            return [tuple(row) for row in session.execute(select(GroupMembership.group_id, GroupMembership.user_id))]

    def definition() -> str:
        with store.read() as session:
            return str(session.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'group_memberships'")))

    with store.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    assert memberships() == [(3, 7)]
    assert "ix_users_directory_id" in {i["name"] for i in inspect(store.engine).get_indexes("users")}
    if store.dialect == "sqlite":
        assert "WITHOUT ROWID" not in definition()
    store.migrate()
    assert memberships() == [(3, 7)]
    assert "ix_users_directory_id" not in {i["name"] for i in inspect(store.engine).get_indexes("users")}
    assert "ix_group_memberships_user_id" in {i["name"] for i in inspect(store.engine).get_indexes("group_memberships")}
    if store.dialect == "sqlite":
        assert "WITHOUT ROWID" in definition()
    with pytest.raises(IntegrityError), store.transaction() as session:
        session.add(GroupMembership(group_id=3, user_id=8))  # the foreign keys came along


def test_emails_are_unique_case_insensitively(store: Store) -> None:
    with store.transaction() as session:
        session.add(User(email="Ann@Example.com", email_key="ann@example.com", attributes={}))
    with pytest.raises(IntegrityError), store.transaction() as session:
        session.add(User(email="ANN@example.com", email_key="ann@example.com", attributes={}))


def test_external_ids_are_unique_per_directory(store: Store) -> None:
    with store.transaction() as session:
        directory = Directory(name="D", provider="file", connection={}, settings={}, group_pins={}, secret_refs={})
        session.add(directory)
        session.flush()
        session.add(User(email="a@x.io", email_key="a@x.io", directory_id=directory.id, external_id="1", attributes={}))
        directory_id = directory.id
    with pytest.raises(IntegrityError), store.transaction() as session:
        session.add(User(email="b@x.io", email_key="b@x.io", directory_id=directory_id, external_id="1", attributes={}))


def test_timestamps_come_back_aware_and_in_utc(store: Store) -> None:
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with store.transaction() as session:
        directory = Directory(name="D", provider="file", connection={}, settings={}, group_pins={}, secret_refs={})
        session.add(directory)
        session.flush()
        run = SyncRun(directory_id=directory.id, trigger="manual", mode="full", started_at=moment)
        session.add(run)
        session.flush()
        run_id = run.id
    with store.transaction() as session:
        assert session.get_one(SyncRun, run_id).started_at == moment
        assert session.get_one(SyncRun, run_id).started_at.tzinfo is not None


def test_directory_secrets_are_encrypted_at_rest(store: Store) -> None:
    sealed = store.secrets.seal({"client_secret": "s3cr3t-value"})
    with store.transaction() as session:
        session.add(
            Directory(
                name="D",
                provider="entra",
                connection={},
                settings={},
                group_pins={},
                secret_refs={},
                secrets=sealed,
            )
        )
    with store.engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT secrets FROM directories").scalar_one()
    assert b"s3cr3t-value" not in bytes(raw)
    assert store.secrets.open(bytes(raw)) == {"client_secret": "s3cr3t-value"}


def test_a_wrong_key_cannot_open_secrets_and_says_what_to_do() -> None:
    sealed = SecretBox(TEST_KEY).seal({"bind_password": "x"})
    other = SecretBox("Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg=")
    with pytest.raises(ConfigurationError, match="ACCESSIQ_SECRET_KEY: stored directory secrets cannot be decrypted"):
        other.open(sealed)
    with pytest.raises(ConfigurationError, match="not a valid Fernet key"):
        SecretBox("short")


def test_the_key_is_generated_once_into_the_data_directory_readable_by_owner_only(tmp_path: Path) -> None:
    first = load_or_create_key(None, tmp_path)
    assert load_or_create_key(None, tmp_path) == first
    mode = stat.S_IMODE(os.stat(tmp_path / "accessiq.key").st_mode)
    assert mode == 0o600
    assert load_or_create_key(TEST_KEY, tmp_path) == TEST_KEY


def test_reads_opening_and_reading_blocks_do_not_wait_for_a_writer(store: Store, tmp_path: Path) -> None:
    """While another connection holds an uncommitted write, reads see the last committed state at once."""
    from accessiq.config import Settings
    from accessiq.store.database import open_store

    with store.read() as session:
        rank = session.scalar(select(Role.rank).where(Role.name == "admin"))
    writer = store.engine.connect()
    # Begins a transaction that holds SQLite's write lock (on PostgreSQL: the row's lock) until rollback.
    writer.execute(text("UPDATE roles SET rank = rank + 100 WHERE name = 'admin'"))
    try:
        with store.read() as session:
            assert session.scalar(select(Role.rank).where(Role.name == "admin")) == rank
        with Store.reading(), store.transaction() as session:
            assert session.scalar(select(Role.rank).where(Role.name == "admin")) == rank
        if store.dialect == "sqlite":
            # Opening the store checks the schema by reading; only a pending migration takes the lock.
            reopened = open_store(Settings(data_dir=tmp_path, secret_key=TEST_KEY))
            reopened.dispose()
    finally:
        writer.rollback()
        writer.close()


def test_bulk_inserts_store_what_the_orm_stores(store: Store) -> None:
    """Rows written straight to the driver (executemany / COPY) read back through the ORM as written,
    JSON, UTC datetimes, NULLs and scalar defaults included; a constraint still raises IntegrityError."""
    created = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = [
        {
            "email": f"Bulk{i}@Example.com",
            "email_key": f"bulk{i}@example.com",
            "username": None if i else "bulk0",
            "attributes": {
                "department": "R&D",
                "nested": {"n": i},
                "quote": 'it\'s "x"\t\\',
                "big": 2**70,
                "name": "Zoë 👩‍💻",
            },
            "created_at": created,
            "updated_at": created,
        }
        for i in range(3)
    ]
    with store.transaction() as session:
        insert_many(session, User.__table__, rows)
    with store.read() as session:
        stored = session.scalars(select(User).order_by(User.email_key)).all()
        assert [u.email for u in stored] == ["Bulk0@Example.com", "Bulk1@Example.com", "Bulk2@Example.com"]
        assert [u.username for u in stored] == ["bulk0", None, None]
        assert stored[2].attributes == {
            "department": "R&D",
            "nested": {"n": 2},
            "quote": 'it\'s "x"\t\\',
            "big": 2**70,
            "name": "Zoë 👩‍💻",
        }
        assert {u.created_at for u in stored} == {created}
        assert {u.status for u in stored} == {"active"}  # the column's default
    names = ("email", "email_key", "attributes", "created_at", "updated_at")
    with store.transaction() as session:  # rows as tuples of the named columns' values, to the same effect
        insert_many(session, User.__table__, [("T@x.org", "t@x.org", rows[2]["attributes"], created, created)],
                    columns=names)  # fmt: skip
    with store.read() as session:
        again = session.scalars(select(User).where(User.email_key == "t@x.org")).one()
        assert (again.attributes, again.created_at, again.status) == (stored[2].attributes, created, "active")
    with pytest.raises(IntegrityError), store.transaction() as session:
        insert_many(session, User.__table__, rows[:1])
