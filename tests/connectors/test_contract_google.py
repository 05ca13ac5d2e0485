"""The connector contract on the `google` provider, against the Google Workspace sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from accessiq.connectors.google import GoogleConnector
from accessiq.sandbox.google import GoogleSandbox

from .contract import ConnectorContract, Expected
from .google_kit import GoogleKit, fresh_google, google_server


@pytest.fixture(scope="module")
def google_server_module() -> Iterator[tuple[GoogleSandbox, str]]:
    with google_server() as server:
        yield server


@pytest.fixture
def google(google_server_module: tuple[GoogleSandbox, str]) -> Iterator[GoogleKit]:
    with fresh_google(google_server_module) as kit:
        yield kit


class TestGoogleContract(ConnectorContract):
    @pytest.fixture
    def connector(self, google: GoogleKit) -> GoogleConnector:
        return google.connector()

    @pytest.fixture
    def expected(self, google: GoogleKit) -> Expected:
        snapshot = google.sandbox.snapshot()
        return Expected(
            users={uid: u["active"] for uid, u in snapshot["users"].items()},
            # A CUSTOMER member stands for every user of the account.
            groups={gid: (frozenset(g["users"]), frozenset(g["groups"])) for gid, g in snapshot["groups"].items()},
            group_names={gid: g["name"] for gid, g in snapshot["groups"].items()},
        )

    @pytest.fixture
    def mutate(self, google: GoogleKit) -> Callable[[], None]:
        sandbox = google.sandbox

        def change() -> None:
            active = sorted(uid for uid, u in sandbox.snapshot()["users"].items() if u["active"])
            groups = [sandbox.ids[g.id] for g in sandbox.population.groups]
            sandbox.update_user(active[0], {"name": {"fullName": "Renamed Person"}})
            sandbox.set_state(active[1], suspended=True)
            sandbox.set_state(active[2], archived=True)
            sandbox.delete_user(active[3])
            sandbox.move_user(active[4], "/Contractors")
            hire = sandbox.add_user({"name": {"givenName": "New", "familyName": "Hire", "fullName": "New Hire"}})
            leaver = sorted(sandbox.direct_users(groups[5]))[0]
            sandbox.change_members(groups[5], add=[hire["id"]], remove=[leaver])
            sandbox.change_members(groups[6], add=[groups[7]])
            sandbox.update_group(groups[8], {"name": "Renamed Group"})

        return change
