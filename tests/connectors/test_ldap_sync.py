"""End to end: a directory document pointing at a real slapd, synced by the real engine (SQLite).

A full sync, then ten changes in the directory (a rename, a move between OUs, a
disable, a delete, membership changes, ...) and an incremental sync that applies
exactly those; and the error cases ending as failed runs with an actionable message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from accessiq.sandbox import free_port
from accessiq.sandbox.ldap import SERVICE_ACCOUNTS
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.store.tables import Directory
from accessiq.sync.document import validate_document
from accessiq.sync.state import load_cursor, load_mirror

from ..runs_kit import sync
from .ldap_kit import LdapKit, slapd

# Counts that are not changes: what a run looked at, and the known errors.
QUIET = ("users_unchanged", "users_planned", "groups_processed", "user_errors")


@pytest.fixture
def ldap_kit() -> Iterator[LdapKit]:
    with slapd(users=120, groups=30, seed=5) as kit:
        yield kit


def connect(store: Store, kit: LdapKit, settings: dict[str, Any] | None = None, **connection: Any) -> int:
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
            "settings": {
                "default_organization": "acme",
                "attribute_mapping": {"title": "title", "dn": "dn"},
                **(settings or {}),
            },
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def incremental_changes(store: Store, directory_id: int, status: str = "succeeded") -> dict[str, int]:
    """Run an incremental sync; what it changed (counts that are not zero and not QUIET)."""
    run = sync(store, directory_id)
    assert run["status"] == status, run
    assert run["mode"] == "incremental"
    return {k: v for k, v in run["counts"].items() if v and k not in QUIET}


def cursor_stays_until_a_run_applies(
    store: Store, directory: int, change: Callable[[], None], disabled: str, retitled: str, status: str = "succeeded"
) -> None:
    """`change` disables one user and retitles another; the directory blocks any deactivation.

    Neither a dry run nor a run the safety guard stops applies, so neither moves the
    cursor; approved, the stored plan applies and the cursor moves with it.
    """
    assert sync(store, directory)["status"] == status
    with store.transaction() as session:
        stored = load_cursor(session, directory)
        assert stored is not None
        cursor = stored.value
    change()
    with store.transaction() as session:
        run, _ = runs.request_sync(session, session.get_one(Directory, directory), dry_run=True)
        dry_id = run.id
    runs.run_now(store, dry_id)
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked" and "max_deactivations" in blocked["message"]
    with store.transaction() as session:
        assert runs.run_json(session, runs.get_run(session, dry_id))["counts"]["users_deactivated"] == 1
        stored = load_cursor(session, directory)
        assert stored is not None and stored.value == cursor
    runs.approve(store, blocked["id"])
    with store.transaction() as session:
        stored = load_cursor(session, directory)
        assert stored is not None and stored.value != cursor
    users = users_by_external_id(store)
    assert users[disabled]["status"] == "deactivated"
    assert users[retitled]["attributes"]["title"] == "Chief Tester"
    # The next incremental run finds nothing left to do.
    assert incremental_changes(store, directory, status) == {}


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

    changes = incremental_changes(sqlite_store, directory, "succeeded_with_errors")
    # Users: the hire; the rename, the move and the new title; the disable and the delete.
    # Groups: the renamed team. Memberships (people's groups and organizations): the hire's group
    # and organization come in; the removed member's group goes, and the deactivated and deleted
    # users lose theirs (group and organization, two each). The nested group is checked below.
    assert changes == {
        "users_created": 1,
        "users_updated": 3,
        "users_deactivated": 2,
        "groups_updated": 1,
        "memberships_added": 2,
        "group_memberships_added": 1,
        "org_memberships_granted": 1,
        "memberships_removed": 5,
        "group_memberships_removed": 3,
        "org_memberships_revoked": 2,
    }
    after = users_by_external_id(sqlite_store)
    assert after[renamed.id]["id"] == before[renamed.id]["id"] and after[renamed.id]["username"] == "renamed.person"
    assert after[moved.id]["id"] == before[moved.id]["id"]
    assert after[disabled.id]["status"] == "deactivated" and after[deleted.id]["status"] == "deactivated"
    assert after[hire["entryUUID"]]["status"] == "active"
    with sqlite_store.transaction() as session:
        # A group in a group is kept with the source's groups, not as a person's membership.
        assert teams[3].id in load_mirror(session, directory)[("group", teams[2].id)]["groups"]

    assert incremental_changes(sqlite_store, directory, "succeeded_with_errors") == {}


def test_the_cursor_moves_only_when_a_run_applies(sqlite_store: Store, ldap_kit: LdapKit) -> None:
    sandbox = ldap_kit.sandbox
    disabled, retitled = [p for p in sandbox.population.people if p.active and p.email][:2]

    def change() -> None:
        sandbox.disable_user(disabled.username)
        sandbox.update_user(retitled.username, {"title": ["Chief Tester"]})

    directory = connect(sqlite_store, ldap_kit, settings={"safety": {"max_deactivations": 0}})
    cursor_stays_until_a_run_applies(
        sqlite_store, directory, change, disabled.id, retitled.id, status="succeeded_with_errors"
    )


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        ({"bind_password": "wrong"}, r"refused the bind DN .* \(invalid credentials\).*connection.bind_password"),
        ({"base_dn": "dc=nowhere,dc=com"}, r"dc=nowhere,dc=com does not exist.*namingContexts"),
        ({"url": "ldap://127.0.0.1:{free}", "timeout": 3}, r"cannot reach the LDAP server.*check connection.url"),
    ],
)
def test_each_error_case_fails_the_run_with_what_to_do(
    sqlite_store: Store, ldap_kit: LdapKit, connection: dict[str, Any], expected: str
) -> None:
    values = {k: v.format(free=free_port()) if isinstance(v, str) else v for k, v in connection.items()}
    run = sync(sqlite_store, connect(sqlite_store, ldap_kit, **values))
    assert run["status"] == "failed", run
    assert re.search(expected, run["message"], re.DOTALL), run["message"]
    assert run["counts"]["users_created"] == 0


def test_a_bind_account_that_reads_no_groups_is_held_not_applied(sqlite_store: Store, ldap_kit: LdapKit) -> None:
    """A new bind credential whose account may not read ou=Groups: slapd answers with no groups and no
    error, which must not delete every group and the memberships they grant (authentik #19295)."""
    store = sqlite_store
    loose = {"safety": {"max_group_deletions": 1000, "max_group_deletion_percent": 100}}
    directory = connect(store, ldap_kit, loose)
    first = sync(store, directory)
    assert first["status"] in ("succeeded", "succeeded_with_errors") and first["counts"]["groups_created"] == 30
    no_groups = {"bind_dn": ldap_kit.sandbox.service_dn("no-groups"), "bind_password": SERVICE_ACCOUNTS["no-groups"]}
    with store.transaction() as session:
        document = dirs.export_document(session, session.get_one(Directory, directory))
        document["connection"] |= no_groups
        dirs.apply_document(session, store.secrets, validate_document(document), policy=InputPolicy.operator())
    blocked = sync(store, directory, full=True)
    assert blocked["status"] == "blocked", blocked
    assert blocked["message"].startswith(
        "connection.bind_dn, connection.bind_password changed since the last applied sync, "
        "and this run would delete 30 groups"
    )
    with store.read() as session:
        assert len(load_mirror(session, directory, kind="group")) == 30


def test_more_changes_than_the_soft_size_limit_stay_incremental(sqlite_store: Store) -> None:
    """slapd gives the service account 500 entries a search (its soft limit); a syncrepl refresh
    cannot page, so it asks for more, up to the hard limit, rather than reading everything."""
    with slapd(users=700, groups=10, seed=7) as kit:
        directory = connect(sqlite_store, kit)
        sync(sqlite_store, directory)
        people = [p for p in kit.sandbox.population.people if p.email and p.active]
        assert len(people) > 600
        for person in people[:600]:
            kit.sandbox.update_user(person.username, {"title": ["Busy Day"]})
        run = sync(sqlite_store, directory)
        assert run["mode"] == "incremental" and run["counts"]["users_updated"] == 600, run
        assert not any("read everything again" in note for note in run["notes"]), run["notes"]
