"""SCIM bearer tokens: one directory each, stored hashed, rotated with a grace period."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from accessiq.config import Settings
from accessiq.errors import ConfigurationError
from accessiq.server import create_app
from accessiq.services import directories as dirs
from accessiq.services import scim_tokens
from accessiq.services.accounts import digest
from accessiq.store.database import Store, open_store
from accessiq.store.tables import ScimToken, utcnow

from ..cli.conftest import cli  # noqa: F401 - the fixture
from ..conftest import TEST_KEY
from .conftest import Scim, issue, make_directory, user_body


def _status(client: TestClient, directory: int | str, token: str | None, path: str = "/Users") -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get(f"/scim/v2/{directory}{path}", headers=headers).status_code


def test_every_request_without_the_token_is_refused(app_client: TestClient, store: Store, directory: int) -> None:
    token = issue(store, directory)
    for path in ("/Users", "/Groups", "/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/Users/x"):
        assert _status(app_client, directory, None, path) == 401
        assert _status(app_client, directory, token[:-1] + "x", path) == 401
    refused = app_client.post(f"/scim/v2/{directory}/Users", json=user_body("mallory@example.com"))
    assert refused.status_code == 401
    assert refused.json()["status"] == "401"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert _status(app_client, directory, token) == 200


def test_a_token_never_reaches_another_directory(app_client: TestClient, store: Store) -> None:
    one = make_directory(store, "One")
    two = make_directory(store, "Two")
    token_one = issue(store, one)
    Scim(app_client, one, token_one)("POST", "/Users", user_body("ann@example.com"))
    # By id or by name, another directory refuses it, and its users stay unseen and untouched.
    assert _status(app_client, two, token_one) == 401
    assert _status(app_client, "Two", token_one) == 401
    assert _status(app_client, "One", token_one) == 200
    written = Scim(app_client, two, token_one)("POST", "/Users", user_body("eve@example.com"))
    assert written.status_code == 401
    token_two = issue(store, two)
    assert Scim(app_client, two, token_two)("GET", "/Users").json()["totalResults"] == 0


def test_rotation_keeps_the_old_token_for_its_grace_period(
    app_client: TestClient, store: Store, directory: int
) -> None:
    first = issue(store, directory)
    second = issue(store, directory, grace="1h")
    assert _status(app_client, directory, first) == 200
    assert _status(app_client, directory, second) == 200
    # An hour later (the grace period ends) the first stops working; the second goes on.
    with store.transaction() as session:
        session.execute(
            update(ScimToken).where(ScimToken.token_hash == digest(first)).values(expires_at=utcnow() - timedelta(1))
        )
    assert _status(app_client, directory, first) == 401
    assert _status(app_client, directory, second) == 200
    # Grace 0: the tokens before stop at once.
    third = issue(store, directory, grace="0")
    assert _status(app_client, directory, second) == 401
    assert _status(app_client, directory, third) == 200


def test_tokens_are_stored_hashed(store: Store, directory: int) -> None:
    token = issue(store, directory)
    with store.read() as session:
        rows = list(session.scalars(select(ScimToken)))
    assert [r.token_hash for r in rows] == [digest(token)]
    assert all(token not in (r.prefix, r.token_hash) for r in rows)
    assert rows[0].prefix == token[: len(rows[0].prefix)] and len(rows[0].prefix) < 16


def test_only_push_directories_get_tokens(store: Store, tmp_path: Path) -> None:
    snapshot = tmp_path / "s.json"
    snapshot.write_text('{"users": [], "groups": []}')
    from accessiq.services.input_policy import InputPolicy
    from accessiq.sync.document import validate_document

    with store.transaction() as session:
        pulled, _ = dirs.apply_document(
            session,
            store.secrets,
            validate_document({"name": "Files", "provider": "file", "connection": {"path": str(snapshot)}}),
            policy=InputPolicy.operator(),
        )
        with pytest.raises(ConfigurationError, match="does not receive pushes"):
            scim_tokens.issue_token(session, pulled)


def test_cli_makes_a_token_shown_once(cli: Any, tmp_path: Path) -> None:  # noqa: F811
    document = tmp_path / "scim.yaml"
    document.write_text("name: Pushed\nprovider: scim\nconnection: {}\n")
    cli("directories", "apply", str(document))
    made = json.loads(cli("directories", "scim-token", "Pushed", "--json", "--base-url", "https://iq.example").stdout)
    assert made["base_url"] == f"https://iq.example/scim/v2/{made['directory']}"
    assert made["token"].startswith(scim_tokens.TOKEN_PREFIX)
    again = json.loads(cli("directories", "scim-token", "Pushed", "--json", "--grace", "0").stdout)
    assert again["token"] != made["token"] and again["previous_tokens_expire_at"] is not None
    shown = cli("directories", "show", "Pushed", "--json").stdout
    assert made["token"] not in shown and again["token"] not in shown
    store = open_store(Settings(data_dir=tmp_path / "data", secret_key=TEST_KEY))
    try:
        with TestClient(create_app(store), base_url="https://testserver") as client:
            assert _status(client, "Pushed", made["token"]) == 401
            assert _status(client, "Pushed", again["token"]) == 200
    finally:
        store.dispose()
