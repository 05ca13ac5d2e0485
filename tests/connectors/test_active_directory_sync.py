"""End to end: a directory document pointing at a real Samba AD DC, synced by the real engine (SQLite).

A full sync, then ten changes in the domain (a rename, a move between OUs, a
disable, a delete, membership changes, a primary group, ...) and an incremental
sync by uSNChanged that applies exactly those; and the cursor staying put while
runs do not apply.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from accessiq.services import directories as dirs
from accessiq.services import identity
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.sync.document import validate_document
from accessiq.sync.state import load_mirror

from ..runs_kit import sync
from .ad_kit import ADMIN, ADMIN_PASSWORD, URL, AdKit
from .test_ldap_sync import cursor_stays_until_a_run_applies, incremental_changes, users_by_external_id

pytestmark = pytest.mark.xdist_group("samba-ad")


def connect(store: Store, ad: AdKit, connection: dict[str, Any] | None = None, **settings: Any) -> int:
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        document = {
            "name": "Contoso AD",
            "provider": "ldap",
            "connection": {
                "url": URL,
                "bind_dn": ADMIN,
                "bind_password": ADMIN_PASSWORD,
                "base_dn": ad.base,
                "flavor": "active_directory",
                **(connection or {}),
            },
            "settings": {
                "default_organization": "acme",
                "attribute_mapping": {"title": "title", "dn": "dn"},
                **settings,
            },
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def memberships_of(ad: AdKit, name: str) -> int:
    """In how many groups the user is a direct member."""
    guid = ad.users[name].guid
    return sum(guid in g.users for g in ad.groups.values())


def test_a_full_sync_then_an_incremental_sync_of_ten_changes(sqlite_store: Store, ad: AdKit) -> None:
    directory = connect(sqlite_store, ad)
    first = sync(sqlite_store, directory)
    assert first["status"] == "succeeded", first
    assert first["counts"]["users_created"] == sum(ad.user_states().values())
    assert first["counts"]["groups_created"] == len(ad.groups)
    before = users_by_external_id(sqlite_store)

    team4, team5 = ad.groups["Team 4"], ad.groups["Team 5"]
    outsider = next(n for n in sorted(ad.users) if ad.users[n].active and ad.users[n].guid not in team4.users)
    leaver = next(n for n in sorted(ad.users, reverse=True) if ad.users[n].active and ad.users[n].guid in team5.users)
    others = [n for n in sorted(ad.users) if ad.users[n].active and n not in (outsider, leaver)]
    renamed, moved, disabled, deleted, retitled = others[:5]
    ids = {n: ad.users[n].guid for n in (renamed, moved, disabled, deleted)}
    lost = memberships_of(ad, disabled) + memberships_of(ad, deleted)
    ad.rename(renamed, "renamed")  # 1 rename (sAMAccountName and DN change)
    ad.move(moved, "Legal" if "OU=Legal" not in ad.users[moved].dn else "Finance")  # 2 move between OUs
    ad.disable(disabled)  # 3 disable (userAccountControl)
    ad.delete(deleted)  # 4 delete (a tombstone)
    ad.update_user(retitled, title="Chief Tester")  # 5 attribute change
    hire = ad.add_user("hire", ou="Finance")  # 6 new user
    ad.change_members("Team 3", add=["hire"])  # 7 membership added
    ad.change_members("Team 5", remove=[leaver])  # 8 membership removed
    ad.change_members("Team 2", add_groups=["Team 4"])  # 9 nested group added
    ad.set_primary_group(outsider, "Team 4")  # 10 a new primary group: a membership by primaryGroupID

    changes = incremental_changes(sqlite_store, directory)
    # Users: the hire; the rename, the move and the new title; the disable and the delete.
    # Memberships in: the hire's group, the primary group, and the hire's organization. Out: the
    # removed member's, every group of the disabled and the deleted user, and their organization.
    assert changes == {
        "users_created": 1,
        "users_updated": 3,
        "users_deactivated": 2,
        "memberships_added": 3,
        "group_memberships_added": 2,
        "org_memberships_granted": 1,
        "memberships_removed": 1 + lost + 2,
        "group_memberships_removed": 1 + lost,
        "org_memberships_revoked": 2,
    }
    with sqlite_store.transaction() as session:
        # A group in a group is kept with the source's groups, not as a person's membership.
        mirror = load_mirror(session, directory)
        team2 = mirror[("group", ad.groups["Team 2"].guid)]
        assert team2["groups"] == [ad.groups["Team 4"].guid]
        assert set(mirror[("group", team4.guid)]["users"]) == team4.users
    after = users_by_external_id(sqlite_store)
    assert after[ids[renamed]]["id"] == before[ids[renamed]]["id"]
    assert after[ids[renamed]]["username"] == ad.login("renamed")
    assert after[ids[moved]]["id"] == before[ids[moved]]["id"]
    assert after[ids[moved]]["attributes"]["dn"] == ad.users[moved].dn
    assert after[ids[disabled]]["status"] == "deactivated" and after[ids[deleted]]["status"] == "deactivated"
    assert after[hire.guid]["status"] == "active"
    assert "Team 4" in after[ad.users[outsider].guid]["groups"]

    assert incremental_changes(sqlite_store, directory) == {}


def test_the_cursor_moves_only_when_a_run_applies(sqlite_store: Store, ad: AdKit) -> None:
    def change() -> None:
        ad.disable("person000")
        ad.update_user("person001", title="Chief Tester")

    directory = connect(sqlite_store, ad, safety={"max_deactivations": 0})
    cursor_stays_until_a_run_applies(
        sqlite_store, directory, change, ad.users["person000"].guid, ad.users["person001"].guid
    )


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        ({"bind_password": "wrong"}, r"refused the bind DN .* \(invalid credentials\).*connection.bind_password"),
        ({"base_dn": "OU=Gone,{base}"}, r"OU=Gone,OU=k\d+,DC=example,DC=test does not exist.*namingContexts"),
    ],
)
def test_each_error_case_fails_the_run_with_what_to_do(
    sqlite_store: Store, ad: AdKit, connection: dict[str, str], expected: str
) -> None:
    values = {k: v.format(base=ad.base) for k, v in connection.items()}
    run = sync(sqlite_store, connect(sqlite_store, ad, connection=values))
    assert run["status"] == "failed", run
    assert re.search(expected, run["message"], re.DOTALL), run["message"]
