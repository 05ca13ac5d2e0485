"""Fixtures for connector tests: a Microsoft Graph sandbox on a loopback port, a Samba AD DC."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accessiq.sandbox.entra import EntraSandbox

from .ad_kit import AdKit, SambaDC, samba_dc
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


@pytest.fixture(scope="session")
def samba_dc_session() -> Iterator[SambaDC]:
    """One Samba AD DC for the whole session (port 389 is fixed), under a lock shared by all workers."""
    with samba_dc() as dc:
        yield dc


@pytest.fixture
def ad(samba_dc_session: SambaDC) -> Iterator[AdKit]:
    """An organizational unit of this test's own on the DC, seeded with a few users and groups."""
    kit = AdKit(samba_dc_session).seed()
    try:
        yield kit
    finally:
        kit.close()
