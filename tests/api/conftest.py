"""Fixtures for the REST API tests: an app over the `store` fixture, API tokens, a seeded directory."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from accessiq import connectors
from accessiq.config import Settings
from accessiq.connectors.file import FileConnection, FileConnector
from accessiq.server import create_app
from accessiq.services import accounts as auth
from accessiq.services import identity
from accessiq.store.database import Store


class SecretConnection(FileConnection):
    """A file connection that also takes a secret, to prove secrets stay write-only."""

    secret_fields: ClassVar[tuple[str, ...]] = ("api_token",)
    api_token: str


class SecretFileConnector(FileConnector):
    provider = "secretfile"
    settings_model = SecretConnection  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def secret_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register `secretfile`, a file provider with a secret field, as a plugin would."""
    module = types.ModuleType("accessiq_test_secretfile")
    module.SecretFileConnector = SecretFileConnector  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "accessiq_test_secretfile", module)
    connectors.register_provider("secretfile", "accessiq_test_secretfile:SecretFileConnector")
    yield
    connectors.unregister_provider("secretfile")


class Api:
    """A TestClient that sends a bearer token unless told otherwise."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.token = token

    def __call__(self, method: str, url: str, *, token: str | None = "default", **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        return self.client.request(method, url, headers=headers, **kwargs)


def _token(store: Store, scope: str = "write", name: str = "tests") -> str:
    with store.transaction() as session:
        return auth.create_token(session, name, scope=scope).secret


@pytest.fixture
def app_client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """The app over the store, queued runs left in the queue (no worker).

    Snapshot files of directories made through the API must lie in the snapshot
    directory: the test's own tmp_path, where the `snapshot` fixture writes.
    """
    app = create_app(store, settings=Settings(snapshot_dir=tmp_path))
    with TestClient(app, base_url="https://testserver") as client:
        yield client


@pytest.fixture
def api(app_client: TestClient, store: Store) -> Api:
    return Api(app_client, _token(store))


@pytest.fixture
def orgs(store: Store) -> None:
    with store.transaction() as session:
        identity.create_organization(session, "acme", "Acme")
        identity.create_organization(session, "acme-eng", "Acme Engineering")
