"""The connector contract on the `file` provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accessiq.connectors.file import FileConnection, FileConnector

from .contract import ConnectorContract, Expected

DOCUMENT: dict[str, Any] = {
    "users": [
        {"id": "u1", "email": "ann@example.com", "username": "ann", "given_name": "Ann", "active": True},
        {"id": "u2", "email": "bob@example.com", "username": "bob", "active": False},
        {"id": "u3", "email": "cat@example.com", "username": "cat", "profile": {"department": "R&D"}},
    ],
    "groups": [
        {"id": "g1", "name": "Engineering", "members": ["u1", "g2", "nobody"]},
        {"id": "g2", "name": "Platform", "members": ["u2", "u3"]},
        {"id": "g3", "name": "Empty", "members": []},
    ],
}


class TestFileContract(ConnectorContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        path = tmp_path / "directory.json"
        path.write_text(json.dumps(DOCUMENT))
        return path

    @pytest.fixture
    def connector(self, path: Path) -> FileConnector:
        return FileConnector(FileConnection(path=str(path)))

    @pytest.fixture
    def expected(self) -> Expected:
        return Expected(
            users={"u1": True, "u2": False, "u3": True},
            groups={
                "g1": (frozenset({"u1"}), frozenset({"g2"})),
                "g2": (frozenset({"u2", "u3"}), frozenset()),
                "g3": (frozenset(), frozenset()),
            },
            group_names={"g1": "Engineering", "g2": "Platform"},
        )

    @pytest.fixture
    def mutate(self, path: Path) -> Callable[[], None]:
        def change() -> None:
            document = json.loads(path.read_text())
            document["users"][0]["display_name"] = "Ann Changed"
            document["groups"][1]["members"] = ["u3"]
            path.write_text(json.dumps(document))

        return change
