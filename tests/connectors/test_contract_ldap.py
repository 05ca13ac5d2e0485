"""The connector contract on the `ldap` provider, against a real OpenLDAP slapd."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from accessiq.connectors.ldap import LdapConnector

from .contract import ConnectorContract, Expected
from .ldap_kit import LdapKit, slapd


@pytest.fixture
def ldap_kit() -> Iterator[LdapKit]:
    with slapd(users=300, groups=40, seed=3) as kit:
        yield kit


class TestLdapContract(ConnectorContract):
    @pytest.fixture
    def connector(self, ldap_kit: LdapKit) -> LdapConnector:
        return ldap_kit.connector()

    @pytest.fixture
    def expected(self, ldap_kit: LdapKit) -> Expected:
        population = ldap_kit.sandbox.population
        return Expected(
            users={p.id: p.active for p in population.people},
            groups=ldap_kit.expected_memberships(),
            group_names={g.id: g.name for g in population.groups},
        )

    @pytest.fixture
    def mutate(self, ldap_kit: LdapKit) -> Callable[[], None]:
        sandbox = ldap_kit.sandbox

        def change() -> None:
            people = [p for p in sandbox.population.people if p.active]
            groups = [g for g in sandbox.population.groups if g.member_users and g.kind != "office"]
            sandbox.update_user(people[0].username, {"displayName": ["Renamed Person"], "title": ["CTO"]})
            sandbox.disable_user(people[1].username)
            sandbox.delete(people[2].username)
            sandbox.rename(people[3].username, "moved.and.renamed")
            sandbox.move("moved.and.renamed", "Finance")
            hire = sandbox.add_user(given_name="New", surname="Hire")
            leaver = sandbox.population.by_id[groups[1].member_users[0]].username
            sandbox.change_members(groups[1].name, add=[hire["uid"]], remove=[leaver])
            sandbox.change_members(groups[2].name, add=[groups[3].name])
            sandbox.rename(groups[4].name, "Renamed Group", groups=True)

        return change
