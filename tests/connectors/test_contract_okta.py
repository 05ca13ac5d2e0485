"""The connector contract on the `okta` provider, against the Okta sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from accessiq.connectors.okta import OktaConnector
from accessiq.sandbox.okta import OktaSandbox

from .contract import ConnectorContract, Expected
from .okta_kit import OktaKit, fresh_okta, okta_server


@pytest.fixture(scope="module")
def okta_server_module() -> Iterator[tuple[OktaSandbox, str]]:
    with okta_server() as server:
        yield server


@pytest.fixture
def okta(okta_server_module: tuple[OktaSandbox, str]) -> Iterator[OktaKit]:
    with fresh_okta(okta_server_module) as kit:
        yield kit


class TestOktaContract(ConnectorContract):
    @pytest.fixture
    def connector(self, okta: OktaKit) -> OktaConnector:
        return okta.connector()

    @pytest.fixture
    def expected(self, okta: OktaKit) -> Expected:
        snapshot = okta.sandbox.snapshot()
        synced = {gid: g for gid, g in snapshot["groups"].items() if g["type"] != "BUILT_IN"}
        return Expected(
            users={uid: status not in ("SUSPENDED", "DEPROVISIONED") for uid, status in snapshot["users"].items()},
            groups={gid: (frozenset(g["users"]), frozenset()) for gid, g in synced.items()},
            group_names={gid: g["name"] for gid, g in synced.items()},
        )

    @pytest.fixture
    def mutate(self, okta: OktaKit) -> Callable[[], None]:
        sandbox = okta.sandbox

        def change() -> None:
            active = sorted(uid for uid, s in sandbox.snapshot()["users"].items() if s == "ACTIVE")
            okta_groups = sorted(gid for gid, g in sandbox.snapshot()["groups"].items() if g["type"] == "OKTA_GROUP")
            sandbox.update_user(active[0], {"displayName": "Renamed Person", "title": "CTO"})
            sandbox.set_status(active[1], "SUSPENDED")
            sandbox.delete_user(active[2])
            sandbox.delete_user(active[3], permanent=True)
            hire = sandbox.add_user({"firstName": "New", "lastName": "Hire"})
            leaver = sorted(sandbox.members[okta_groups[1]])[0]
            sandbox.change_members(okta_groups[1], add=[hire["id"]], remove=[leaver])
            sandbox.update_group(okta_groups[2], {"name": "Renamed Group"})

        return change
