"""Fixtures for the security tests: the app under the operator settings a test chooses, and an attacker.

The attacker holds an ordinary `write` API token (or an administrator's browser
session) and runs a listener on 127.0.0.2 that records what it receives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accessiq.config import Settings
from accessiq.server import create_app
from accessiq.store.crypto import KEY_FILE
from accessiq.store.database import Store

from ..api.conftest import Api, _token
from ..conftest import TEST_KEY
from .kit import Listener

ServeApi = Callable[..., Api]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The server's data directory (the SQLite store's too), with the key file a first start generates."""
    (tmp_path / KEY_FILE).write_text(TEST_KEY + "\n")
    (tmp_path / "snapshots").mkdir()
    return tmp_path


@pytest.fixture
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory on the server outside the data directory."""
    return tmp_path_factory.mktemp("elsewhere")


@pytest.fixture
def serve(store: Store, data_dir: Path) -> Iterator[ServeApi]:
    """`serve(**settings)`: the app with these operator settings, and a client holding a write token."""
    with ExitStack() as stack:

        def start(**settings: Any) -> Api:
            app = create_app(store, settings=Settings(data_dir=data_dir, secret_key=TEST_KEY, **settings))
            client = stack.enter_context(TestClient(app, base_url="https://testserver"))
            return Api(client, _token(store))

        yield start


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running
