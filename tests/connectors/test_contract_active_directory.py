"""The connector contract on the `ldap` provider (flavor active_directory), against a real Samba AD DC."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accessiq.connectors.ldap import LdapConnector

from .ad_kit import AdKit
from .contract import ConnectorContract, Expected

pytestmark = pytest.mark.xdist_group("samba-ad")


class TestActiveDirectoryContract(ConnectorContract):
    @pytest.fixture
    def connector(self, ad: AdKit) -> LdapConnector:
        return ad.connector()

    @pytest.fixture
    def expected(self, ad: AdKit) -> Expected:
        return Expected(
            users=ad.user_states(),
            groups=ad.expected_memberships(),
            group_names={g.guid: g.name for g in ad.groups.values()},
        )

    @pytest.fixture
    def mutate(self, ad: AdKit) -> Callable[[], None]:
        def change() -> None:
            ad.update_user("person000", displayName="Renamed Person", title="CTO")
            ad.disable("person001")
            ad.delete("person002")
            ad.rename("person008", "moved.renamed")
            ad.move("moved.renamed", "Legal")
            ad.add_user("hire", ou="Finance")
            ad.change_members("Team 1", add=["hire"], remove=["person000"])
            ad.change_members("Team 2", add_groups=["Team 3"])
            ad.set_primary_group("person009", "Team 5")

        return change
