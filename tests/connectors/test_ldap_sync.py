"""End to end: a directory document pointing at a real slapd, synced by the real engine (SQLite).

A full sync, then ten changes in the directory (a rename, a move between OUs, a
disable, a delete, membership changes, ...) and an incremental sync that applies
exactly those; and the error cases ending as failed runs with an actionable message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accessiq.sandbox.ldap import SERVICE_ACCOUNTS
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.store.tables import Directory
from accessiq.sync.document import validate_document

from .ldap_kit import LdapKit, slapd

# Counts that are not changes: what a run looked at, and the known errors.
QUIET = ("users_unchanged", "users_planned", "groups_processed", "user_errors")


@pytest.fixture
def ldap_kit() -> Iterator[LdapKit]:
    with slapd(users=120, groups=30, seed=5) as kit:
        yield kit


def connect(store: Store, kit: LdapKit, **connection: Any) -> int:
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        document = {
            "name": "Contoso LDAP",
            "provider": "ldap",
            "connection": {
                "url": kit.sandbox.url,
                "bind_dn": kit.sandbox.service_dn(),
                "bind_password": SERVICE_ACCOUNTS["accessiq"],
                "base_dn": kit.sandbox.suffix,
                **connection,
            },
            "settings": {"default_organization": "acme", "attribute_mapping": {"title": "title", "dn": "dn"}},
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def sync(store: Store, directory_id: int, *, full: bool = False) -> dict[str, Any]:
    with store.transaction() as session:
        run, _ = runs.request_sync(session, session.get_one(Directory, directory_id), full=full)
        run_id = run.id
    runs.run_now(store, run_id)
    with store.transaction() as session:
        return runs.run_json(session, runs.get_run(session, run_id))


def users_by_external_id(store: Store) -> dict[str, dict[str, Any]]:
    with store.transaction() as session:
        return {u["external_id"]: u for u in identity.users_json(session, identity.list_users(session))}


def test_a_full_sync_then_an_incremental_sync_of_ten_changes(sqlite_store: Store, ldap_kit: LdapKit) -> None:
    sandbox = ldap_kit.sandbox
    population = sandbox.population
    directory = connect(sqlite_store, ldap_kit)
    first = sync(sqlite_store, directory)
    with_mail = [p for p in population.people if p.email]
    # The few generated people without a mailbox are errors on those users, not on the run.
    assert first["status"] == "succeeded_with_errors", first
    assert first["counts"]["user_errors"] == len(population.people) - len(with_mail) > 0
    assert first["counts"]["users_created"] == len([p for p in with_mail if p.active])
    assert first["counts"]["groups_created"] == len(population.groups)
    before = users_by_external_id(sqlite_store)

    active = [p for p in with_mail if p.active]
    teams = [g for g in population.groups if g.kind == "team" and len(g.member_users) >= 2]
    renamed, moved, disabled, deleted, retitled = active[:5]
    sandbox.rename(renamed.username, "renamed.person")  # 1 rename (uid and DN change)
    sandbox.move(moved.username, "Legal" if moved.department != "Legal" else "Finance")  # 2 move between OUs
    sandbox.disable_user(disabled.username)  # 3 disable
    sandbox.delete(deleted.username)  # 4 delete
    sandbox.update_user(retitled.username, {"title": ["Chief Tester"]})  # 5 attribute change
    hire = sandbox.add_user(given_name="New", surname="Hire", department="Engineering")  # 6 new user
    sandbox.change_members(teams[0].name, add=[hire["uid"]])  # 7 membership added
    gone = population.by_id[teams[1].member_users[0]].username
    sandbox.change_members(teams[1].name, remove=[gone])  # 8 membership removed
    sandbox.change_members(teams[2].name, add=[teams[3].name])  # 9 nested group added
    sandbox.rename(teams[4].name, "Renamed Team", groups=True)  # 10 group renamed

    second = sync(sqlite_store, directory)
    assert second["status"] == "succeeded_with_errors", second
    assert second["mode"] == "incremental"
    changes = {k: v for k, v in second["counts"].items() if v and k not in QUIET}
    # Users: the hire; the rename, the move and the new title; the disable and the delete.
    # Groups: the renamed team. Memberships: the hire's and the nested group's come in; the
    # removed member's goes, and the deactivated and deleted users lose theirs (two each).
    assert changes == {
        "users_created": 1,
        "users_updated": 3,
        "users_deactivated": 2,
        "groups_updated": 1,
        "memberships_added": 2,
        "memberships_removed": 5,
    }
    after = users_by_external_id(sqlite_store)
    assert after[renamed.id]["id"] == before[renamed.id]["id"] and after[renamed.id]["username"] == "renamed.person"
    assert after[moved.id]["id"] == before[moved.id]["id"]
    assert after[disabled.id]["status"] == "deactivated" and after[deleted.id]["status"] == "deactivated"
    assert after[hire["entryUUID"]]["status"] == "active"

    third = sync(sqlite_store, directory)
    assert third["mode"] == "incremental"
    assert {k: v for k, v in third["counts"].items() if v and k not in QUIET} == {}
