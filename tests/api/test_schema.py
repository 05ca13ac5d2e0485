"""Schemathesis against /openapi.json: generated requests never make the API answer a server error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from accessiq.config import Settings
from accessiq.server import create_app
from accessiq.services import accounts as auth
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store, open_store
from accessiq.sync.document import validate_document

TEST_KEY = "hQv0Zb4m6n8V2rW3u9i1hJkL5mN7pQ0sT2vX4yZ6a8c="


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, str]]:
    """A store with a synced directory (id 1), a dry run, an organization and a token."""
    root = tmp_path_factory.mktemp("schema")
    snapshot = root / "snapshot.json"
    snapshot.write_text(
        json.dumps(
            {
                "users": [{"id": "u1", "email": "one@example.com"}, {"id": "u2", "email": "two@example.com"}],
                "groups": [{"id": "g1", "name": "Staff", "members": ["u1", "u2"]}],
            }
        )
    )
    store = open_store(Settings(data_dir=root, secret_key=TEST_KEY))
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        document = {
            "name": "Acme",
            "provider": "file",
            "connection": {"path": str(snapshot)},
            "settings": {"default_organization": "acme"},
            "group_mappings": [{"source_group": "Staff", "organization": "acme", "role": "admin"}],
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        first, _ = runs.request_sync(session, directory)
    runs.run_now(store, first.id)
    with store.transaction() as session:
        dry, _ = runs.request_sync(session, dirs.get_directory(session, 1), dry_run=True)
    runs.run_now(store, dry.id)
    with store.transaction() as session:
        token = auth.create_token(session, "schemathesis").secret
    yield store, token
    store.dispose()


@pytest.fixture(scope="module")
def api_schema(seeded: tuple[Store, str]) -> Any:
    store, _ = seeded
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(store))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_never_answers_a_server_error(case: Any, seeded: tuple[Store, str]) -> None:
    _, token = seeded
    # Semantic validation (an organization that does not exist, a template that does not parse) cannot be
    # written into the schema, so schema-valid data may be refused and coerced data accepted.
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection],
    )
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    if response.status_code >= 400 and case.path.startswith("/api/"):
        body = response.json()
        assert set(body) == {"error"}, body
        assert body["error"]["kind"] and body["error"]["message"]
