"""The guard on a real store (SQLite and PostgreSQL): changes and reads that must not delete people."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from accessiq.services import runs
from accessiq.store.database import Store

from ..conftest import Snapshot
from .test_engine import connect, sync, users

LOOSE = {"max_deactivations": 100_000, "max_deactivation_percent": 100}
WIDE_OPEN = {
    **LOOSE,
    "max_group_deletions": 100_000,
    "max_group_deletion_percent": 100,
    "max_membership_removals": 100_000,
    "max_membership_removal_percent": 100,
}


def staff(snapshot: Snapshot, count: int = 20) -> list[str]:
    names = [f"u{i:02d}" for i in range(count)]
    for name in names:
        snapshot.user(name, department="Sales" if int(name[1:]) % 2 else "R&D")
    return names


def active(store: Store) -> set[str]:
    return {email for email, user in users(store).items() if user["status"] == "active"}


def changes(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((c["object"], c["action"], c["external_id"]) for c in run["changes"])


def write_copy(snapshot: Snapshot, path: Path, keep: int) -> Path:
    """A second snapshot holding only the first `keep` users: another file, as another base DN would read."""
    path.write_text(json.dumps({"users": snapshot.users[:keep], "groups": []}))
    return path


def test_a_changed_connection_that_would_deactivate_people_is_blocked_whatever_the_thresholds(
    store: Store, snapshot: Snapshot, tmp_path: Path
) -> None:
    staff(snapshot)
    directory = connect(store, snapshot, settings={"safety": WIDE_OPEN})
    assert sync(store, directory)["status"] == "succeeded"
    other = write_copy(snapshot, tmp_path / "other.json", keep=15)
    connect(store, snapshot, settings={"safety": WIDE_OPEN}, connection={"path": str(other)})

    blocked = sync(store, directory)

    assert blocked["status"] == "blocked"
    message = blocked["message"]
    assert "connection.path changed since the last applied sync" in message
    assert "would deactivate 5 users" in message
    assert "approve the run if they are right" in message and "restore the previous setting" in message
    assert len(active(store)) == 20, "a blocked run applies nothing"

    approved = runs.approve(store, blocked["id"])
    assert approved.status == "succeeded"
    with store.read() as session:
        applied = runs.run_json(session, runs.get_run(session, approved.id), changes=True)
    assert applied["changes"] == blocked["changes"], "approval applies exactly the stored plan"
    assert len(active(store)) == 15
    again = sync(store, directory)
    assert again["status"] == "succeeded" and again["changes"] == []


def test_a_changed_connection_that_deactivates_nobody_applies(store: Store, snapshot: Snapshot, tmp_path: Path) -> None:
    staff(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    snapshot.find("u03")["given_name"] = "Changed"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({"users": snapshot.users, "groups": snapshot.groups}))
    connect(store, snapshot, connection={"path": str(moved)})
    run = sync(store, directory)
    assert run["status"] == "succeeded"
    assert changes(run) == [("user", "update", "u03")]


def test_a_changed_user_filter_is_blocked_and_rejecting_keeps_everyone(store: Store, snapshot: Snapshot) -> None:
    staff(snapshot)
    directory = connect(store, snapshot, settings={"safety": LOOSE})
    sync(store, directory)
    connect(store, snapshot, settings={"safety": LOOSE, "user_filter": {"condition": "department == 'Sales'"}})
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked"
    assert "settings.user_filter changed" in blocked["message"] and "deactivate 10 users" in blocked["message"]
    runs.reject(store, blocked["id"])
    assert len(active(store)) == 20
    # Restoring the filter the last applied run used lifts the hold.
    connect(store, snapshot, settings={"safety": LOOSE})
    assert sync(store, directory)["status"] == "succeeded"


def test_switching_from_ignore_to_deactivate_is_held(store: Store, snapshot: Snapshot) -> None:
    staff(snapshot)
    directory = connect(store, snapshot, settings={"safety": LOOSE, "deactivation": "ignore"})
    sync(store, directory)
    snapshot.remove("u01")
    snapshot.write()
    assert sync(store, directory)["counts"]["users_retained"] == 1
    connect(store, snapshot, settings={"safety": LOOSE, "deactivation": "deactivate"})
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked" and "settings.deactivation changed" in blocked["message"]


def test_a_changed_group_mapping_holds_a_run_that_deletes_a_group(store: Store, snapshot: Snapshot) -> None:
    staff(snapshot)
    snapshot.group("g-sales", "Sales", ["u01", "u03"])
    snapshot.group("g-old", "Old", ["u02"])
    directory = connect(store, snapshot, orgs=("acme", "sales"))
    sync(store, directory)
    snapshot.remove("g-old")
    snapshot.write()
    mapping = [{"source_group": "Sales", "organization": "sales", "role": "member"}]
    connect(store, snapshot, orgs=("acme", "sales"), group_mappings=mapping)
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked"
    assert "group_mappings changed" in blocked["message"] and "delete 1 group" in blocked["message"]


def test_the_first_run_of_a_directory_is_not_held_for_a_changed_setting(store: Store, snapshot: Snapshot) -> None:
    """No applied run yet means nothing to compare with: a preview, an edit, then the first sync applies."""
    staff(snapshot)
    directory = connect(store, snapshot)
    preview = sync(store, directory, dry_run=True)
    assert preview["status"] == "succeeded"
    connect(store, snapshot, settings={"user_filter": {"condition": "department == 'Sales'"}})
    first = sync(store, directory)
    assert first["status"] == "succeeded" and first["counts"]["users_created"] == 10


def test_an_edit_the_run_does_not_read_with_is_not_held(store: Store, snapshot: Snapshot) -> None:
    """Frequency, thresholds and attribute mapping decide nothing about who is in the directory."""
    staff(snapshot)
    directory = connect(store, snapshot, settings={"safety": {"max_deactivations": 3}})
    sync(store, directory)
    snapshot.remove("u05")
    snapshot.write()
    edited = {"safety": {"max_deactivations": 4}, "frequency": "15m", "attribute_mapping": {"dept": "department"}}
    connect(store, snapshot, settings=edited)
    run = sync(store, directory)
    assert run["status"] == "succeeded" and run["counts"]["users_deactivated"] == 1


def test_a_directory_that_returns_a_tenth_of_its_users_is_held_like_an_empty_one(
    store: Store, snapshot: Snapshot
) -> None:
    names = staff(snapshot, 30)
    directory = connect(store, snapshot, settings={"safety": WIDE_OPEN})
    sync(store, directory)
    for name in names[3:]:
        snapshot.remove(name)
    snapshot.write()
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked"
    assert "returned 3 users, 90% fewer than the 30 of the last applied sync" in blocked["message"]
    assert "approve the run only if the directory really shrank" in blocked["message"]
    assert len(active(store)) == 30


def test_a_smaller_drop_is_left_to_the_thresholds(store: Store, snapshot: Snapshot) -> None:
    names = staff(snapshot, 30)
    directory = connect(store, snapshot, settings={"safety": WIDE_OPEN})
    sync(store, directory)
    for name in names[4:]:
        snapshot.remove(name)
    snapshot.write()
    run = sync(store, directory)
    assert run["status"] == "succeeded" and run["counts"]["users_deactivated"] == 26


def test_a_group_that_lost_nine_tenths_of_its_members_is_held(store: Store, snapshot: Snapshot) -> None:
    names = staff(snapshot)
    snapshot.group("g-all", "Everyone", list(names))
    directory = connect(store, snapshot, settings={"safety": WIDE_OPEN})
    sync(store, directory)
    snapshot.find("g-all")["members"] = names[:2]
    snapshot.write()
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked"
    assert "Everyone (20 -> 2, 90% fewer)" in blocked["message"]
    assert "check those groups in the directory" in blocked["message"]
    assert len(users(store)["u10@example.com"]["groups"]) == 1


def test_a_small_group_emptying_is_not_a_collapse(store: Store, snapshot: Snapshot) -> None:
    names = staff(snapshot)
    snapshot.group("g-few", "Few", names[:3])
    directory = connect(store, snapshot, settings={"safety": WIDE_OPEN})
    sync(store, directory)
    snapshot.find("g-few")["members"] = []
    snapshot.write()
    assert sync(store, directory)["status"] == "succeeded"


@pytest.mark.parametrize(
    ("safety", "reason"),
    [
        ({"max_group_deletions": 2}, "would delete 3 groups, more than safety.max_group_deletions (2)"),
        (
            {"max_group_deletion_percent": 20},
            "would delete 3 of 12 groups (25%), more than safety.max_group_deletion_percent (20%)",
        ),
    ],
)
def test_group_deletion_thresholds(store: Store, snapshot: Snapshot, safety: dict[str, Any], reason: str) -> None:
    names = staff(snapshot)
    for i in range(12):
        snapshot.group(f"g{i}", f"Team {i}", [names[i]])
    directory = connect(store, snapshot, settings={"safety": {**WIDE_OPEN, **safety}})
    sync(store, directory)
    for i in range(3):
        snapshot.remove(f"g{i}")
    snapshot.write()
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked" and reason in blocked["message"], blocked["message"]
    runs.approve(store, blocked["id"])
    assert sync(store, directory)["changes"] == []


@pytest.mark.parametrize(
    ("safety", "reason"),
    [
        (
            {"max_membership_removals": 4},
            "would remove 5 members from group Everyone, more than safety.max_membership_removals (4)",
        ),
        (
            {"max_membership_removal_percent": 20},
            "would remove 5 of the 20 members of group Everyone (25%), more than "
            "safety.max_membership_removal_percent (20%)",
        ),
    ],
)
def test_membership_removal_thresholds_per_group(
    store: Store, snapshot: Snapshot, safety: dict[str, Any], reason: str
) -> None:
    names = staff(snapshot)
    snapshot.group("g-all", "Everyone", list(names))
    directory = connect(store, snapshot, settings={"safety": {**WIDE_OPEN, **safety}})
    sync(store, directory)
    snapshot.find("g-all")["members"] = names[5:]
    snapshot.write()
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked" and reason in blocked["message"], blocked["message"]
    assert len(users(store)["u00@example.com"]["groups"]) == 1


def test_the_percentage_of_a_small_group_is_not_counted(store: Store, snapshot: Snapshot) -> None:
    names = staff(snapshot)
    snapshot.group("g-pair", "Pair", names[:2])
    directory = connect(store, snapshot, settings={"safety": {"max_membership_removal_percent": 10}})
    sync(store, directory)
    snapshot.find("g-pair")["members"] = names[:1]
    snapshot.write()
    assert sync(store, directory)["status"] == "succeeded"


def test_a_new_secret_is_a_change_the_guard_sees_without_storing_the_secret(sqlite_store: Store) -> None:
    from accessiq.connectors.ldap_settings import LdapConnection
    from accessiq.sync.affected import connection_digests, guard_changes

    def digests(password: str) -> dict[str, str]:
        connection = LdapConnection.model_validate(
            {
                "url": "ldaps://dc1.corp:636",
                "bind_dn": "cn=sync,dc=corp",
                "bind_password": password,
                "base_dn": "dc=corp",
            }
        )
        return connection_digests(connection, sqlite_store.secrets)

    before, same, after = digests("hunter2"), digests("hunter2"), digests("hunter3")
    assert before == same, "re-saving the same secret is no change"
    assert guard_changes(before, after) == ("connection.bind_password",)
    assert "hunter2" not in json.dumps(before)
    assert hashlib.sha256(json.dumps("hunter2").encode()).hexdigest()[:32] not in before.values()
    assert guard_changes(None, after) == (), "no applied run yet: nothing to compare with"
