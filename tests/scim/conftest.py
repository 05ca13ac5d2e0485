"""Fixtures for the SCIM endpoint: a push directory with a group mapping, its token, a client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accessiq.config import Settings
from accessiq.errors import ConflictError
from accessiq.server import create_app
from accessiq.services import directories as dirs
from accessiq.services import identity, runs, scim_tokens
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.sync.document import validate_document

SCIM_TYPE = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def make_organizations(store: Store) -> None:
    with store.transaction() as session:
        for slug in ("acme", "acme-eng"):
            with contextlib.suppress(ConflictError):
                identity.create_organization(session, slug)


def make_directory(store: Store, name: str = "Contoso", **settings: Any) -> int:
    """A `scim` directory: default organization `acme` (member), group `Engineering` -> `acme-eng` admin."""
    make_organizations(store)
    with store.transaction() as session:
        directory, _ = dirs.apply_document(
            session,
            store.secrets,
            validate_document(
                {
                    "name": name,
                    "provider": "scim",
                    "connection": {},
                    "settings": {"default_organization": "acme", **settings},
                    "group_mappings": [{"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}],
                }
            ),
            policy=InputPolicy.operator(),
        )
        return directory.id


def issue(store: Store, directory_id: int, grace: str = "1h") -> str:
    with store.transaction() as session:
        directory = dirs.get_directory(session, directory_id)
        return scim_tokens.issue_token(session, directory, scim_tokens.parse_grace(grace)).token


class Scim:
    """A client of one directory's SCIM endpoint, sending its token (and no User-Agent, as Entra)."""

    def __init__(self, client: TestClient, directory: int | str, token: str) -> None:
        self.client = client
        self.base = f"/scim/v2/{directory}"
        self.token = token

    def __call__(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_TYPE}
        headers.update(kwargs.pop("headers", {}))
        return self.client.request(method, self.base + path, json=body, headers=headers, **kwargs)


def users(store: Store, directory_id: int) -> dict[str, dict[str, Any]]:
    """The directory's users by email: status, and {organization: role} of their memberships."""
    with store.read() as session:
        found = identity.users_json(session, identity.list_users(session, dirs.get_directory(session, directory_id)))
    return {
        u["email"]: {
            "status": u["status"],
            "orgs": {m["organization"]: m["role"] for m in u["memberships"]},
            "groups": sorted(u["groups"]),
            "given_name": u["given_name"],
        }
        for u in found
    }


def push_runs(store: Store, directory_id: int) -> list[dict[str, Any]]:
    with store.read() as session:
        found = runs.list_runs(session, dirs.get_directory(session, directory_id), limit=500)
        return [runs.run_json(session, r) for r in reversed(found)]


def user_body(user_name: str, *, external_id: str | None = None, active: Any = True, **extra: Any) -> dict[str, Any]:
    given, _, family = user_name.split("@")[0].partition(".")
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "externalId": external_id or user_name.split("@")[0],
        "active": active,
        "name": {"givenName": given.title(), "familyName": (family or "Doe").title()},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        **extra,
    }


@pytest.fixture
def app_client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(store, settings=Settings(snapshot_dir=tmp_path))
    with TestClient(app, base_url="https://testserver") as client:
        yield client


@pytest.fixture
def directory(store: Store) -> int:
    return make_directory(store, safety={"max_deactivations": 500, "max_deactivation_percent": 100})


@pytest.fixture
def scim(app_client: TestClient, store: Store, directory: int) -> Scim:
    return Scim(app_client, directory, issue(store, directory))
