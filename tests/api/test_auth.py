"""The access-control matrix: every route of the app, API and web, against every kind of caller.

`ACCESS` says who may call each route. The routes are enumerated from the app itself, so a
new route fails `test_every_route_has_a_declared_access` until its access is declared here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import update

from accessiq.config import Settings
from accessiq.server import create_app
from accessiq.services import accounts as auth
from accessiq.store.database import Store, open_store
from accessiq.store.tables import WebSession, utcnow

TEST_KEY = "hQv0Zb4m6n8V2rW3u9i1hJkL5mN7pQ0sT2vX4yZ6a8c="

READ = "read"  # an API route any live token may call
WRITE = "write"  # an API route only a write token may call
PUBLIC = "public"  # anyone: health, the schema, static files, the sign-in and setup forms
METRICS = "metrics"  # open on loopback by default; a token when ACCESSIQ_METRICS_AUTH asks for one
PAGE = "page"  # a web page or form for a signed-in administrator
SCIM = "scim"  # a SCIM route: only a live SCIM token of the directory it names (tests/scim)

ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/directories"): READ,
    ("POST", "/api/v1/directories"): WRITE,
    ("GET", "/api/v1/directories/{directory}"): READ,
    ("PUT", "/api/v1/directories/{directory}"): WRITE,
    ("DELETE", "/api/v1/directories/{directory}"): WRITE,
    ("GET", "/api/v1/directories/{directory}/export"): READ,
    ("GET", "/api/v1/directories/{directory}/settings"): READ,
    ("PATCH", "/api/v1/directories/{directory}/settings"): WRITE,
    ("GET", "/api/v1/directories/{directory}/group-mappings"): READ,
    ("PUT", "/api/v1/directories/{directory}/group-mappings"): WRITE,
    ("POST", "/api/v1/directories/{directory}/test"): WRITE,
    ("GET", "/api/v1/directories/{directory}/source-groups"): READ,
    ("POST", "/api/v1/directories/{directory}/mapping-preview"): WRITE,
    ("POST", "/api/v1/directories/{directory}/sync"): WRITE,
    ("GET", "/api/v1/directories/{directory}/runs"): READ,
    ("GET", "/api/v1/runs"): READ,
    ("GET", "/api/v1/runs/{run}"): READ,
    ("GET", "/api/v1/runs/{run}/changes"): READ,
    ("POST", "/api/v1/runs/{run}/approve"): WRITE,
    ("POST", "/api/v1/runs/{run}/reject"): WRITE,
    ("POST", "/api/v1/runs/{run}/cancel"): WRITE,
    ("GET", "/api/v1/users"): READ,
    ("POST", "/api/v1/users"): WRITE,
    ("GET", "/api/v1/users/{user}"): READ,
    ("DELETE", "/api/v1/users/{user}"): WRITE,
    ("POST", "/api/v1/users/{user}/deactivate"): WRITE,
    ("POST", "/api/v1/users/{user}/activate"): WRITE,
    ("GET", "/api/v1/groups"): READ,
    ("GET", "/api/v1/organizations"): READ,
    ("POST", "/api/v1/organizations"): WRITE,
    ("GET", "/api/v1/organizations/{org}"): READ,
    ("GET", "/api/v1/organizations/{org}/members"): READ,
    ("POST", "/api/v1/organizations/{org}/members"): WRITE,
    ("DELETE", "/api/v1/organizations/{org}/members/{user}"): WRITE,
    ("GET", "/api/v1/roles"): READ,
    ("POST", "/api/v1/roles"): WRITE,
    ("GET", "/api/v1/providers"): READ,
    ("GET", "/api/v1/providers/{name}"): READ,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/metrics"): METRICS,
    ("MOUNT", "/static"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/setup"): PUBLIC,
    ("POST", "/setup"): PUBLIC,
    ("GET", "/"): PAGE,
    ("POST", "/logout"): PAGE,
    ("GET", "/directories"): PAGE,
    ("GET", "/directories/new"): PAGE,
    ("GET", "/directories/frequency-words"): PAGE,
    ("POST", "/directories/new"): PAGE,
    ("GET", "/directories/new/credentials"): PAGE,
    ("POST", "/directories/new/credentials"): PAGE,
    ("GET", "/directories/{directory_id}/setup/credentials"): PAGE,
    ("POST", "/directories/{directory_id}/setup/credentials"): PAGE,
    ("GET", "/directories/{directory_id}/setup/test"): PAGE,
    ("GET", "/directories/{directory_id}/setup/settings"): PAGE,
    ("POST", "/directories/{directory_id}/setup/settings"): PAGE,
    ("GET", "/directories/{directory_id}/setup/mappings"): PAGE,
    ("POST", "/directories/{directory_id}/setup/mappings"): PAGE,
    ("POST", "/directories/{directory_id}/setup/mappings/organization"): PAGE,
    ("GET", "/directories/{directory_id}/setup/preview"): PAGE,
    ("POST", "/directories/{directory_id}/setup/preview"): PAGE,
    ("POST", "/directories/{directory_id}/setup/apply"): PAGE,
    ("GET", "/directories/{directory_id}/setup/schedule"): PAGE,
    ("POST", "/directories/{directory_id}/setup/schedule"): PAGE,
    ("GET", "/directories/{directory_id}"): PAGE,
    ("POST", "/directories/{directory_id}/sync"): PAGE,
    ("GET", "/directories/{directory_id}/connection"): PAGE,
    ("POST", "/directories/{directory_id}/connection"): PAGE,
    ("POST", "/directories/{directory_id}/test"): PAGE,
    ("GET", "/directories/{directory_id}/settings"): PAGE,
    ("POST", "/directories/{directory_id}/settings"): PAGE,
    ("GET", "/directories/{directory_id}/mappings"): PAGE,
    ("POST", "/directories/{directory_id}/mappings"): PAGE,
    ("POST", "/directories/{directory_id}/mappings/organization"): PAGE,
    ("GET", "/directories/{directory_id}/attributes"): PAGE,
    ("POST", "/directories/{directory_id}/attributes"): PAGE,
    ("POST", "/directories/{directory_id}/attributes/preview"): PAGE,
    ("POST", "/directories/{directory_id}/delete"): PAGE,
    ("GET", "/runs"): PAGE,
    ("GET", "/runs/{run_id}"): PAGE,
    ("GET", "/runs/{run_id}/progress"): PAGE,
    ("POST", "/runs/{run_id}/approve"): PAGE,
    ("POST", "/runs/{run_id}/reject"): PAGE,
    ("POST", "/runs/{run_id}/cancel"): PAGE,
    ("GET", "/users"): PAGE,
    ("GET", "/users/{user_id}"): PAGE,
    ("POST", "/users/{user_id}/{action}"): PAGE,
    ("GET", "/groups"): PAGE,
    ("GET", "/groups/{group_id}"): PAGE,
    ("GET", "/organizations"): PAGE,
    ("POST", "/organizations"): PAGE,
    ("GET", "/organizations/{slug}"): PAGE,
    ("GET", "/settings/tokens"): PAGE,
    ("POST", "/settings/tokens"): PAGE,
    ("POST", "/settings/tokens/{token_id}/revoke"): PAGE,
    ("POST", "/directories/{directory_id}/scim-token"): PAGE,
    ("GET", "/scim/v2/{directory}/Users"): SCIM,
    ("POST", "/scim/v2/{directory}/Users"): SCIM,
    ("POST", "/scim/v2/{directory}/Users/.search"): SCIM,
    ("GET", "/scim/v2/{directory}/Users/{resource_id}"): SCIM,
    ("PUT", "/scim/v2/{directory}/Users/{resource_id}"): SCIM,
    ("PATCH", "/scim/v2/{directory}/Users/{resource_id}"): SCIM,
    ("DELETE", "/scim/v2/{directory}/Users/{resource_id}"): SCIM,
    ("GET", "/scim/v2/{directory}/Groups"): SCIM,
    ("POST", "/scim/v2/{directory}/Groups"): SCIM,
    ("POST", "/scim/v2/{directory}/Groups/.search"): SCIM,
    ("GET", "/scim/v2/{directory}/Groups/{resource_id}"): SCIM,
    ("PUT", "/scim/v2/{directory}/Groups/{resource_id}"): SCIM,
    ("PATCH", "/scim/v2/{directory}/Groups/{resource_id}"): SCIM,
    ("DELETE", "/scim/v2/{directory}/Groups/{resource_id}"): SCIM,
    ("GET", "/scim/v2/{directory}/ServiceProviderConfig"): SCIM,
    ("GET", "/scim/v2/{directory}/ResourceTypes"): SCIM,
    ("GET", "/scim/v2/{directory}/ResourceTypes/{name}"): SCIM,
    ("GET", "/scim/v2/{directory}/Schemas"): SCIM,
    ("GET", "/scim/v2/{directory}/Schemas/{schema_id}"): SCIM,
    ("POST", "/scim/v2/{directory}/.search"): SCIM,
}

# What stands in for each path parameter; the objects need not exist, refusal comes first.
_PARAMETERS = {"org": "acme", "action": "deactivate"}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _PARAMETERS.get(m.group(1), "1"), path)


def _routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, routers included at any depth; mounts as MOUNT."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        methods = route.methods
        if methods is None:
            found.add(("MOUNT", str(route.path)))
        found |= {(method, str(route.path)) for method in methods or () if method != "HEAD"}
    return found


def _offline_app() -> FastAPI:
    store = open_store(
        Settings(data_dir=Path("/nonexistent-accessiq"), secret_key=TEST_KEY, database_url="sqlite://"), migrate=False
    )
    app = create_app(store)
    store.dispose()
    return app


def _cases(*kinds: str) -> list[tuple[str, str]]:
    return sorted((method, _concrete(path)) for (method, path), kind in ACCESS.items() if kind in kinds)


API_ROUTES = _cases(READ, WRITE)
SCIM_ROUTES = _cases(SCIM)
WRITES = _cases(WRITE)
READS = _cases(READ)
PAGES = _cases(PAGE)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(Settings(data_dir=tmp_path_factory.mktemp("auth"), secret_key=TEST_KEY))
    with store.transaction() as session:
        auth.create_administrator(session, "admin@example.com", "correct horse battery staple")
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def client(module_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(module_store), base_url="https://testserver") as c:
        yield c


def make_token(store: Store, scope: str = "write", name: str = "tests") -> str:
    with store.transaction() as session:
        return auth.create_token(session, name, scope=scope).secret


def _revoke(store: Store, secret: str) -> None:
    with store.transaction() as session:
        token = next(t for t in auth.list_tokens(session) if t.token_hash == auth.digest(secret))
        auth.revoke_token(session, token.id)


def _session_cookie(store: Store) -> str:
    with store.transaction() as session:
        return auth.start_session(session, auth.get_administrator(session, "admin@example.com"))[0]


def test_every_route_has_a_declared_access() -> None:
    routes = _routes_of(_offline_app())
    assert routes - ACCESS.keys() == set(), "declare who may call these routes in ACCESS"
    assert ACCESS.keys() - routes == set(), "these routes are gone; remove them from ACCESS"


def _assert_error(response: object, status: int, kind: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert body["error"]["kind"] == kind
    assert body["error"]["message"]


# -- the REST API ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_no_token_is_refused(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    _assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_wrong_token_is_refused(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={}, headers={"Authorization": "Bearer aiq_not-a-real-token"})
    _assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_revoked_token_is_refused(client: TestClient, module_store: Store, method: str, path: str) -> None:
    secret = make_token(module_store, name="revoked")
    _revoke(module_store, secret)
    response = client.request(method, path, json={}, headers={"Authorization": f"Bearer {secret}"})
    _assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_read_only_token_cannot_change_anything(
    client: TestClient, module_store: Store, method: str, path: str
) -> None:
    secret = make_token(module_store, scope="read", name="reader")
    response = client.request(method, path, json={}, headers={"Authorization": f"Bearer {secret}"})
    _assert_error(response, 403, "forbidden")


@pytest.mark.parametrize(("method", "path"), READS)
def test_read_only_token_passes_on_every_read_route(
    client: TestClient, module_store: Store, method: str, path: str
) -> None:
    secret = make_token(module_store, scope="read", name="reader")
    response = client.request(method, path, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code not in (401, 403), response.text


def test_read_only_token_can_read(client: TestClient, module_store: Store) -> None:
    secret = make_token(module_store, scope="read", name="reader")
    response = client.get("/api/v1/directories", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert response.json() == []


def test_a_revoked_token_stops_working_at_once(app_client: TestClient, store: Store) -> None:
    """No cache between the token table and the check, on either backend: the next request is refused."""
    secret = make_token(store, name="soon revoked")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert app_client.get("/api/v1/directories", headers=bearer).status_code == 200
    _revoke(store, secret)
    _assert_error(app_client.get("/api/v1/directories", headers=bearer), 401, "unauthorized")
    _assert_error(app_client.post("/api/v1/organizations", headers=bearer, json={"slug": "x"}), 401, "unauthorized")


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


def test_public_routes_need_no_credential(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "sqlite"}
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/login").status_code == 200
    # An administrator exists, so the setup form sends everyone to sign in.
    assert client.get("/setup", follow_redirects=False).headers["location"] == "/login"


# -- /metrics ----------------------------------------------------------------------------------


def _metrics_app(store: Store, mode: str = "auto", host: str | None = None) -> TestClient:
    settings = Settings(metrics_auth=mode)
    return TestClient(create_app(store, settings=settings, listen_host=host), base_url="https://testserver")


@pytest.mark.parametrize(
    ("mode", "host"),
    [("auto", None), ("auto", "127.0.0.1"), ("auto", "localhost"), ("auto", "::1"), ("open", "0.0.0.0")],
)
def test_metrics_are_open_on_loopback_by_default(module_store: Store, mode: str, host: str | None) -> None:
    with _metrics_app(module_store, mode, host) as scraper:
        assert scraper.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("mode", "host"),
    [
        ("auto", "0.0.0.0"),
        ("auto", "::"),
        ("auto", "192.0.2.7"),
        ("auto", "aiq.example.com"),
        ("token", None),
        ("token", "127.0.0.1"),
    ],
)
def test_metrics_need_a_token_off_loopback_or_when_told(module_store: Store, mode: str, host: str | None) -> None:
    reader = make_token(module_store, scope="read", name="prometheus")
    revoked = make_token(module_store, scope="read", name="old prometheus")
    _revoke(module_store, revoked)
    with _metrics_app(module_store, mode, host) as scraper:
        refused = scraper.get("/metrics")
        _assert_error(refused, 401, "unauthorized")
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        _assert_error(scraper.get("/metrics", headers={"Authorization": f"Bearer {revoked}"}), 401, "unauthorized")
        scraped = scraper.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
        assert scraped.status_code == 200
        assert "accessiq_sync_runs" in scraped.text


def test_serve_on_every_interface_asks_for_a_metrics_token(module_store: Store) -> None:
    from accessiq.processes import _web_server

    assert _web_server(module_store, "0.0.0.0", 8000).config.app.state.metrics_token_required
    assert not _web_server(module_store, "127.0.0.1", 8000).config.app.state.metrics_token_required


# -- web pages ---------------------------------------------------------------------------------


def _is_sign_in_redirect(response: object, path: str, method: str) -> bool:
    location = response.headers.get("location", "")  # type: ignore[attr-defined]
    wanted = "/login" if method != "GET" or path == "/" else f"/login?next={path}"
    return response.status_code == 303 and location == wanted  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_pages_without_a_session_send_to_sign_in(client: TestClient, method: str, path: str) -> None:
    client.cookies.clear()
    response = client.request(method, path, follow_redirects=False)
    assert _is_sign_in_redirect(response, path, method), (response.status_code, response.headers.get("location"))


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_pages_with_an_expired_session_send_to_sign_in(
    client: TestClient, module_store: Store, method: str, path: str
) -> None:
    cookie = _session_cookie(module_store)
    client.cookies.clear()
    client.cookies.set("aiq_session", cookie)
    live = client.request(method, path, follow_redirects=False)
    assert not _is_sign_in_redirect(live, path, method), "the session should still be live here"
    if method != "GET":
        assert live.status_code == 403, "a form without the session's CSRF token is refused"
    with module_store.transaction() as session:
        session.execute(
            update(WebSession)
            .where(WebSession.token_hash == auth.digest(cookie))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = client.request(method, path, follow_redirects=False)
    client.cookies.clear()
    assert _is_sign_in_redirect(expired, path, method), (expired.status_code, expired.headers.get("location"))


# -- SCIM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), SCIM_ROUTES)
def test_scim_routes_refuse_api_tokens_and_no_token(
    client: TestClient, module_store: Store, method: str, path: str
) -> None:
    """An API token is no SCIM token: the SCIM face answers 401 in its own error envelope."""
    token = make_token(module_store)
    for headers in ({}, {"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer aiqscim_forged"}):
        response = client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"].startswith("application/scim+json")
        assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
