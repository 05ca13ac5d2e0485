"""Fixtures for connector tests: a Microsoft Graph sandbox on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accessiq.sandbox.entra import EntraSandbox

from .graph_kit import GraphKit, fresh_kit, graph_server


@pytest.fixture(scope="session")
def graph_server_session() -> Iterator[tuple[EntraSandbox, str]]:
    with graph_server() as server:
        yield server


@pytest.fixture
def graph(graph_server_session: tuple[EntraSandbox, str]) -> Iterator[GraphKit]:
    """The Graph sandbox, freshly seeded for this test."""
    with fresh_kit(graph_server_session) as kit:
        yield kit
