"""The connector contract on the `entra` provider, against the Graph sandbox."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accessiq.connectors.entra import EntraConnector

from .contract import ConnectorContract, Expected
from .graph_kit import GraphKit


class TestEntraContract(ConnectorContract):
    @pytest.fixture
    def connector(self, graph: GraphKit) -> EntraConnector:
        return graph.connector()

    @pytest.fixture
    def expected(self, graph: GraphKit) -> Expected:
        snapshot = graph.sandbox.snapshot()
        return Expected(
            users={uid: props["accountEnabled"] for uid, props in snapshot["users"].items()},
            groups={
                gid: (frozenset(g["users"]), frozenset(g["groups"])) for gid, g in snapshot["groups"].items()
            },
            group_names={gid: g["displayName"] for gid, g in snapshot["groups"].items()},
        )

    @pytest.fixture
    def mutate(self, graph: GraphKit) -> Callable[[], None]:
        sandbox = graph.sandbox

        def change() -> None:
            people = [p.id for p in sandbox.population.people if p.id in sandbox.snapshot()["users"]]
            groups = sandbox.population.groups
            sandbox.update_user(people[0], {"displayName": "Renamed Person"})
            sandbox.disable_user(people[1])
            sandbox.delete_user(people[2])
            sandbox.delete_user(people[3], permanent=True)
            added = sandbox.add_user({"displayName": "New Hire"})
            leaver = sandbox.snapshot()["groups"][groups[5].id]["users"][0]
            sandbox.change_members(groups[5].id, add=[added["id"]], remove=[leaver])
            sandbox.change_members(groups[6].id, add=[groups[7].id])
            sandbox.update_group(groups[8].id, {"displayName": "Renamed Group"})

        return change
