"""The `ldap` connector (flavor active_directory) against a real Samba AD domain controller.

objectGUID identities, the userAccountControl disabled bit, range retrieval past
1,500 members, primary groups, nested groups, and uSNChanged incremental reads
with tombstones for deletes and an invocationId check.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accessiq.connectors.base import ReadStarted, UserRemoved, UserUpserted

from .ad_kit import AdKit, SambaDC
from .contract import Mirror

pytestmark = pytest.mark.xdist_group("samba-ad")


def _incremental(kit: AdKit, first: Mirror) -> Mirror:
    """The first read's mirror brought forward by an incremental read from its cursor."""
    events = list(kit.connector().read(first.cursor))
    assert isinstance(events[0], ReadStarted) and not events[0].full, events[0]
    return Mirror.of(
        events,
        base=Mirror(
            users=dict(first.users),
            groups=dict(first.groups),
            members={k: (set(u), set(g)) for k, (u, g) in first.members.items()},
        ),
    )


def test_users_are_keyed_on_object_guid_as_its_canonical_string(ad: AdKit) -> None:
    mirror = Mirror.of(ad.connector().read(None))
    assert set(mirror.users) == {u.guid for u in ad.users.values()}
    for user in ad.users.values():
        # The DC reads the string form itself: only the canonical (mixed-endian) spelling finds the user.
        assert ad.dn_of_guid(mirror.users[user.guid].external_id) == user.dn
        assert mirror.users[user.guid].data["sAMAccountName"] == user.login
    assert set(mirror.groups) == {g.guid for g in ad.groups.values()}


def test_the_disabled_bit_of_user_account_control_deactivates(ad: AdKit) -> None:
    first = Mirror.of(ad.connector().read(None))
    assert {k: u.active for k, u in first.users.items()} == ad.user_states()
    assert not all(ad.user_states().values()), "the seed has disabled users"
    ad.disable("person000")
    # Another bit set besides ACCOUNTDISABLE (a password that never expires) is still enabled.
    ad.update_user("person001", userAccountControl=str(0x200 | 0x20 | 0x10000))
    after = _incremental(ad, first)
    assert after.users[ad.users["person000"].guid].active is False
    assert after.users[ad.users["person001"].guid].active is True


def test_a_rename_and_a_move_between_org_units_keep_the_identity(ad: AdKit) -> None:
    first = Mirror.of(ad.connector().read(None))
    renamed, moved = ad.users["person002"].guid, ad.users["person003"].guid
    ad.rename("person002", "renamed")
    ad.move("person003", "Legal" if "OU=Legal" not in ad.users["person003"].dn else "Finance")
    events = list(ad.connector().read(first.cursor))
    upserts = [e.user for e in events if isinstance(e, UserUpserted)]
    assert not [e for e in events if isinstance(e, UserRemoved)]
    assert {u.external_id for u in upserts} == {renamed, moved}
    by_id = {u.external_id: u for u in upserts}
    assert by_id[renamed].data["sAMAccountName"] == ad.login("renamed")
    assert by_id[renamed].org_unit == ad.users["renamed"].dn
    assert by_id[moved].org_unit == ad.users["person003"].dn
    # Memberships follow the GUID, not the DN.
    after = _incremental(ad, first)
    assert after.memberships() == first.memberships() == ad.expected_memberships()


def test_nested_groups_are_reported_as_group_members(ad: AdKit) -> None:
    mirror = Mirror.of(ad.connector().read(None))
    assert mirror.memberships() == ad.expected_memberships()
    team0, team1, team2 = (ad.groups[f"Team {n}"].guid for n in range(3))
    assert mirror.memberships()[team0][1] == {team1} and mirror.memberships()[team1][1] == {team2}


def test_the_primary_group_counts_as_a_membership(ad: AdKit) -> None:
    import ldap

    first = Mirror.of(ad.connector().read(None))
    ad.set_primary_group("person004", "Team 3")
    group = ad.groups["Team 3"]
    # AD lists a user's primary group in no member attribute: only primaryGroupID names it.
    listed = ad.conn.search_s(group.dn, ldap.SCOPE_BASE, "(objectClass=*)", ["member"])[0][1].get("member", [])
    assert ad.users["person004"].dn.encode() not in listed
    user = ad.users["person004"].guid
    assert user in Mirror.of(ad.connector().read(None)).memberships()[group.guid][0]
    # An incremental read that sees only the user's change re-reads its new primary group.
    assert user in _incremental(ad, first).memberships()[group.guid][0]


@pytest.fixture(scope="module")
def big_group(samba_dc_session: SambaDC) -> Iterator[AdKit]:
    """A group of 1,600 users: AD hands out its members 1,500 at a time."""
    kit = AdKit(samba_dc_session)
    kit.add_many_users(1600)
    kit.add_group("Everyone", users=sorted(kit.users))
    try:
        yield kit
    finally:
        kit.close()


def test_range_retrieval_reads_a_group_past_1500_members(big_group: AdKit) -> None:
    mirror = Mirror.of(big_group.connector().read(None))
    users, groups = mirror.memberships()[big_group.groups["Everyone"].guid]
    assert len(users) == 1600 and users == {u.guid for u in big_group.users.values()} and not groups


def test_incremental_reads_by_usn_changed_see_changes_and_tombstones(ad: AdKit) -> None:
    connector = ad.connector()
    first = Mirror.of(connector.read(None))
    assert first.cursor and first.cursor["mode"] == "usn" and first.cursor["invocation_id"]
    unchanged = list(ad.connector().read(first.cursor))
    assert isinstance(unchanged[0], ReadStarted) and not unchanged[0].full and len(unchanged) == 2
    deleted = ad.users["person005"].guid
    ad.delete("person005")
    hire = ad.add_user("hire", ou="Finance")
    ad.change_members("Team 4", add=["hire"])
    ad.update_user("person006", title="Chief Tester")
    events = list(ad.connector().read(first.cursor))
    assert UserRemoved(deleted) in events
    changed = {e.user.external_id for e in events if isinstance(e, UserUpserted)}
    assert changed == {hire.guid, ad.users["person006"].guid}
    after = _incremental(ad, first)
    fresh = Mirror.of(ad.connector().read(None))
    assert set(after.users) == set(fresh.users) == {u.guid for u in ad.users.values()}
    assert after.memberships() == fresh.memberships() == ad.expected_memberships()
    assert after.users[ad.users["person006"].guid].data["title"] == "Chief Tester"


def test_another_invocation_id_means_a_full_read(ad: AdKit) -> None:
    first = Mirror.of(ad.connector().read(None))
    assert first.cursor
    restored = {**first.cursor, "invocation_id": "00000000-0000-4000-8000-000000000000"}
    events = list(ad.connector().read(restored))
    assert isinstance(events[0], ReadStarted) and events[0].full and "invocationId" in (events[0].note or "")
    assert Mirror.of(events).users.keys() == first.users.keys()
