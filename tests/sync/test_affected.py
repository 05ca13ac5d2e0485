"""Runs that plan only what changed since the last applied run (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from accessiq.services import identity
from accessiq.store.database import Store
from accessiq.store.tables import SourceObject
from accessiq.sync.affected import row_hash

from ..conftest import Snapshot, statements
from .test_engine import company, connect, sync, users

MAPPED = {
    "orgs": ("acme", "eng"),
    "settings": {"default_organization": "acme", "attribute_mapping": {"department": "department"}},
    "group_mappings": [{"source_group": "Engineering", "organization": "eng", "role": "admin"}],
}


def test_an_unchanged_resync_reads_no_user_rows_memberships_or_users_mirror_data(
    store: Store, snapshot: Snapshot
) -> None:
    company(snapshot)
    directory = connect(store, snapshot, **MAPPED)
    assert sync(store, directory)["counts"]["users_created"] == 5
    with statements(store) as seen:
        again = sync(store, directory)
    assert again["status"] == "succeeded" and again["changes"] == []
    assert again["counts"]["users_unchanged"] == 5 and again["counts"]["users_planned"] == 0
    loads = [(s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT")]
    assert loads, "the statement recorder saw nothing"
    for marker in ("users.email", "organization_memberships.role_id"):
        assert not [s for s, _ in loads if marker in s], marker
    # The groups' mirror is what a read of no change folds into; no user's mirrored record is read.
    mirror = [p.values() if isinstance(p, dict) else p for s, p in loads if "source_objects.data" in s]
    assert mirror and all("group" in values and "user" not in values for values in mirror), mirror


def test_a_snapshot_file_found_unchanged_is_read_as_no_change_and_its_refused_records_stay_errors(
    store: Store, snapshot: Snapshot
) -> None:
    company(snapshot)
    snapshot.users.append({"email": "no-id@example.com"})
    directory = connect(store, snapshot, **MAPPED)
    first = sync(store, directory)
    assert (first["mode"], first["counts"]["users_created"], first["counts"]["user_errors"]) == ("full", 5, 1)
    again = sync(store, directory)
    assert (again["mode"], again["status"], again["changes"]) == ("incremental", "succeeded_with_errors", [])
    assert again["counts"]["user_errors"] == 1 and "has no 'id'" in again["errors"][0]["message"]
    snapshot.find("ann")["department"] = "Finance"
    snapshot.write()
    changed = sync(store, directory)
    # New bytes are read in full, and the run says so.
    assert changed["mode"] == "full" and changed["counts"]["users_updated"] == 1
    assert changed["counts"]["users_planned"] == 1 and changed["counts"]["user_errors"] == 1


def test_mirror_rows_keep_a_hash_of_their_content_and_the_mapped_email(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    snapshot.find("ann")["email"] = "Ann@Example.com"
    directory = connect(store, snapshot)
    sync(store, directory)
    with store.read() as session:
        rows = session.execute(
            select(
                SourceObject.kind,
                SourceObject.external_id,
                SourceObject.data,
                SourceObject.hash,
                SourceObject.email_key,
            )
        ).all()
    assert len(rows) == 7
    assert all(digest == row_hash(data) for _, _, data, digest, _ in rows)
    emails = {ext: key for kind, ext, _, _, key in rows if kind == "user"}
    assert emails["ann"] == "ann@example.com" and emails["bob"] == "bob@example.com"
    assert {key for kind, _, _, _, key in rows if kind == "group"} == {None}


def changes(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((c["object"], c["action"], c["external_id"]) for c in run["changes"])


def test_a_change_in_a_nested_group_reaches_the_mapping_of_its_parent(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot, **MAPPED)
    sync(store, directory)
    snapshot.find("g-platform")["members"].append("dan")
    snapshot.write()
    assert changes(sync(store, directory)) == [
        ("group_membership", "add", "dan"),
        ("org_membership", "grant", "dan"),
    ]
    dan = users(store)["dan@example.com"]
    assert {(m["organization"], m["role"]) for m in dan["memberships"]} == {("acme", "member"), ("eng", "admin")}
    snapshot.find("g-eng")["members"].remove("g-platform")
    snapshot.write()
    assert changes(sync(store, directory)) == [
        ("org_membership", "revoke", "ann"),
        ("org_membership", "revoke", "bob"),
        ("org_membership", "revoke", "dan"),
    ]


def test_renaming_a_group_updates_its_members_memberof(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot, settings={"attribute_mapping": {"teams": "memberOf"}})
    sync(store, directory)
    assert users(store)["ann@example.com"]["attributes"] == {"teams": ["Platform"]}
    snapshot.find("g-platform")["name"] = "Core"
    snapshot.write()
    assert changes(sync(store, directory)) == [
        ("group", "update", "g-platform"),
        ("user", "update", "ann"),
        ("user", "update", "bob"),
    ]
    assert users(store)["ann@example.com"]["attributes"] == {"teams": ["Core"]}


def test_a_settings_change_replans_every_user(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    connect(store, snapshot, settings={"attribute_mapping": {"department": "department"}})
    run = sync(store, directory)
    assert sorted(c["external_id"] for c in run["changes"]) == ["ann", "bob", "cat", "dan", "eve"]
    assert users(store)["eve@example.com"]["attributes"] == {"department": "Sales"}


def test_an_administrators_activation_of_a_disabled_user_is_undone_by_the_next_sync(
    store: Store, snapshot: Snapshot
) -> None:
    company(snapshot)
    snapshot.find("eve")["active"] = False
    directory = connect(store, snapshot)
    sync(store, directory)
    snapshot.find("eve")["active"] = True
    snapshot.write()
    sync(store, directory)
    snapshot.find("eve")["active"] = False
    snapshot.write()
    assert users(store)["eve@example.com"]["status"] == "active"
    sync(store, directory)
    assert users(store)["eve@example.com"]["status"] == "deactivated"
    with store.transaction() as session:
        identity.activate_user(session, identity.get_user(session, "eve@example.com"))
    run = sync(store, directory)
    assert [(c["action"], c["external_id"]) for c in run["changes"]] == [("deactivate", "eve")]


def test_a_deleted_user_still_in_the_directory_is_created_again(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    with store.transaction() as session:
        bob = identity.get_user(session, "bob@example.com")
        identity.deactivate_user(session, bob)
        identity.delete_user(session, bob)
    run = sync(store, directory)
    assert [(c["object"], c["action"], c["external_id"]) for c in run["changes"]] == [
        ("user", "create", "bob"),
        ("group_membership", "add", "bob"),
    ]


def test_a_disabled_users_email_still_keeps_a_newcomer_from_taking_it(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    snapshot.user("old", "shared@example.com", active=False)
    directory = connect(store, snapshot)
    sync(store, directory)
    snapshot.find("ann")["email"] = "shared@example.com"
    snapshot.write()
    run = sync(store, directory)
    assert run["changes"] == []
    assert {e["external_id"] for e in run["errors"]} == {"ann", "old"}
    assert "shared@example.com" not in users(store)


def test_a_record_error_is_reported_again_by_an_unchanged_resync(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    snapshot.user("bad", "not an email")
    directory = connect(store, snapshot)
    first = sync(store, directory)
    again = sync(store, directory)
    assert first["status"] == again["status"] == "succeeded_with_errors"
    assert [e["external_id"] for e in again["errors"]] == ["bad"]
    snapshot.find("bad")["email"] = "bad@example.com"
    snapshot.write()
    fixed = sync(store, directory)
    assert fixed["status"] == "succeeded" and [c["external_id"] for c in fixed["changes"]] == ["bad"]
