"""Every API route refuses callers without a live token, and read-only tokens may not change anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accessiq.api import auth, create_app
from accessiq.config import Settings
from accessiq.store.database import Store, open_store

TEST_KEY = "hQv0Zb4m6n8V2rW3u9i1hJkL5mN7pQ0sT2vX4yZ6a8c="


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(Settings(data_dir=tmp_path_factory.mktemp("auth"), secret_key=TEST_KEY))
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def client(module_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(module_store), base_url="https://testserver") as c:
        yield c


def make_token(store: Store, scope: str = "write", name: str = "tests") -> str:
    with store.transaction() as session:
        return auth.create_token(session, name, scope=scope).secret


def _routes() -> list[tuple[str, str]]:
    """Every operation of the OpenAPI document, with path parameters filled in."""
    store = open_store(
        Settings(data_dir=Path("/nonexistent-accessiq"), secret_key=TEST_KEY, database_url="sqlite://"), migrate=False
    )
    schema = create_app(store).openapi()
    store.dispose()
    routes: list[tuple[str, str]] = []
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        concrete = (
            path.replace("{directory}", "1").replace("{run}", "1").replace("{user}", "1").replace("{org}", "acme")
        )
        routes.extend((method.upper(), concrete) for method in operations)
    return sorted(routes)


ROUTES = _routes()
WRITES = [(m, p) for m, p in ROUTES if m not in ("GET", "HEAD")]


def test_every_api_route_is_listed() -> None:
    assert len(ROUTES) >= 30
    assert ("POST", "/api/v1/directories/1/sync") in ROUTES


def _assert_error(response: object, status: int, kind: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert body["error"]["kind"] == kind
    assert body["error"]["message"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_token_is_refused(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    _assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_wrong_token_is_refused(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={}, headers={"Authorization": "Bearer aiq_not-a-real-token"})
    _assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_revoked_token_is_refused(client: TestClient, module_store: Store, method: str, path: str) -> None:
    secret = make_token(module_store, name="revoked")
    with module_store.transaction() as session:
        token = next(t for t in auth.list_tokens(session) if t.token_hash == auth.digest(secret))
        auth.revoke_token(session, token.id)
    response = client.request(method, path, json={}, headers={"Authorization": f"Bearer {secret}"})
    _assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_read_only_token_cannot_change_anything(
    client: TestClient, module_store: Store, method: str, path: str
) -> None:
    secret = make_token(module_store, scope="read", name="reader")
    response = client.request(method, path, json={}, headers={"Authorization": f"Bearer {secret}"})
    _assert_error(response, 403, "forbidden")


def test_read_only_token_can_read(client: TestClient, module_store: Store) -> None:
    secret = make_token(module_store, scope="read", name="reader")
    response = client.get("/api/v1/directories", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "aiq_token-without-scheme"])
def test_malformed_authorization_is_refused(client: TestClient, header: str) -> None:
    _assert_error(client.get("/api/v1/directories", headers={"Authorization": header}), 401, "unauthorized")


def test_tokens_are_stored_hashed(module_store: Store) -> None:
    secret = make_token(module_store, name="hashed")
    with module_store.transaction() as session:
        stored = [t.token_hash for t in auth.list_tokens(session)]
    assert auth.digest(secret) in stored
    assert secret not in stored
    assert all(len(h) == 64 for h in stored)


def test_health_and_metrics_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "sqlite"}
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 200
