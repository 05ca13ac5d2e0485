"""`push: true` on a pulled directory: SCIM pushes land between pulls, and the next pull reconciles."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accessiq.errors import ConfigurationError
from accessiq.services import directories as dirs
from accessiq.services import identity, scim_tokens
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.sync.document import validate_document

from ..conftest import Snapshot
from ..sync.test_engine import sync
from .conftest import GROUP_SCHEMA, PATCH_SCHEMA, Scim, issue, push_runs, user_body, users


def pulled_directory(store: Store, snapshot: Snapshot, name: str = "Corp", push: Any = True) -> int:
    """A `file` directory receiving pushes: default organization `acme`, `g-eng` -> `acme-eng` admin."""
    snapshot.write()
    with store.transaction() as session:
        for slug in ("acme", "acme-eng"):
            if session.scalar(select(func.count()).where(identity.Organization.slug == slug)) == 0:
                identity.create_organization(session, slug)
        document = {
            "name": name,
            "provider": "file",
            "push": push,
            "connection": {"path": str(snapshot.path)},
            "settings": {
                "default_organization": "acme",
                "safety": {"max_deactivations": 500, "max_deactivation_percent": 100},
            },
            "group_mappings": [{"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}],
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


@pytest.fixture
def company(snapshot: Snapshot) -> Snapshot:
    for name in ("ann", "bob", "cat"):
        snapshot.user(name)
    snapshot.group("g-eng", "Engineering", ["ann", "bob"])
    return snapshot


def _deactivate(scim: Scim, user_id: str) -> Any:
    body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    return scim("PATCH", f"/Users/{user_id}", body)


def test_a_pushed_deactivation_applies_at_once_and_the_next_pull_wins(
    app_client: TestClient, store: Store, company: Snapshot
) -> None:
    directory = pulled_directory(store, company)
    assert sync(store, directory)["status"] == "succeeded"
    scim = Scim(app_client, directory, issue(store, directory))
    # The provisioning client links its user to the pulled one by externalId (the pulled id).
    created = scim("POST", "/Users", user_body("ann@example.com", external_id="ann"))
    assert created.status_code == 201
    ann = created.json()["id"]
    assert users(store, directory)["ann@example.com"]["orgs"] == {"acme": "member", "acme-eng": "admin"}

    answer = _deactivate(scim, ann)
    assert answer.status_code == 200, push_runs(store, directory)[-1].get("message")
    assert users(store, directory)["ann@example.com"] == {
        "status": "deactivated",
        "orgs": {},
        "groups": [],
        "given_name": "Ann",
    }
    last = push_runs(store, directory)[-1]
    assert (last["trigger"], last["status"], last["counts"]["users_deactivated"]) == ("push", "succeeded", 1)
    assert last["counts"]["memberships_removed"] == 3  # acme, acme-eng and the group Engineering

    # The source still says ann is active: the pull's state wins, and the SCIM resource stays as written.
    assert sync(store, directory)["counts"]["users_reactivated"] == 1
    assert users(store, directory)["ann@example.com"]["orgs"] == {"acme": "member", "acme-eng": "admin"}
    assert users(store, directory)["ann@example.com"]["status"] == "active"
    assert scim("GET", f"/Users/{ann}").json()["active"] is False

    # Once the source deactivates her too, the pull agrees with the push.
    company.user("ann", active=False)
    company.write()
    sync(store, directory)
    assert users(store, directory)["ann@example.com"]["status"] == "deactivated"


def test_a_pushed_delete_deactivates_and_group_members_move_at_once(
    app_client: TestClient, store: Store, company: Snapshot
) -> None:
    directory = pulled_directory(store, company)
    sync(store, directory)
    scim = Scim(app_client, directory, issue(store, directory))
    ids = {
        name: scim("POST", "/Users", user_body(f"{name}@example.com", external_id=name)).json()["id"]
        for name in ("ann", "bob", "cat")
    }
    # Linked to the pulled group by externalId; members it already has move nothing.
    group = scim(
        "POST",
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Engineering",
            "externalId": "g-eng",
            "members": [{"value": ids["ann"]}, {"value": ids["bob"]}],
        },
    )
    assert group.status_code == 201
    before = len(push_runs(store, directory))
    patch = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [
            {"op": "Remove", "path": "members", "value": [{"value": ids["bob"]}]},
            {"op": "Add", "path": "members", "value": [{"value": ids["cat"]}]},
        ],
    }
    assert scim("PATCH", f"/Groups/{group.json()['id']}", patch).status_code == 200
    found = users(store, directory)
    assert found["bob@example.com"]["orgs"] == {"acme": "member"}
    assert found["cat@example.com"]["orgs"] == {"acme": "member", "acme-eng": "admin"}
    assert len(push_runs(store, directory)) == before + 1

    assert scim("DELETE", f"/Users/{ids['ann']}").status_code == 204
    assert users(store, directory)["ann@example.com"]["status"] == "deactivated"
    members = scim("GET", f"/Groups/{group.json()['id']}").json()["members"]
    assert [m["value"] for m in members] == [ids["cat"]]

    # The next pull reads the source as it is: ann and bob back in Engineering, cat out.
    sync(store, directory)
    found = users(store, directory)
    assert found["ann@example.com"]["orgs"] == {"acme": "member", "acme-eng": "admin"}
    assert found["bob@example.com"]["orgs"] == {"acme": "member", "acme-eng": "admin"}
    assert found["cat@example.com"]["orgs"] == {"acme": "member"}


def test_a_pushed_user_the_pull_does_not_know_waits_for_the_pull(
    app_client: TestClient, store: Store, company: Snapshot
) -> None:
    directory = pulled_directory(store, company)
    sync(store, directory)
    scim = Scim(app_client, directory, issue(store, directory))
    created = scim("POST", "/Users", user_body("zed@example.com", external_id="zed"))
    assert created.status_code == 201
    assert scim("GET", f"/Users/{created.json()['id']}").json()["userName"] == "zed@example.com"
    assert "zed@example.com" not in users(store, directory)
    assert [r["trigger"] for r in push_runs(store, directory)] == ["manual"]
    # The pull brings zed; from then on pushes about zed act on the pulled record.
    company.user("zed")
    company.write()
    sync(store, directory)
    assert users(store, directory)["zed@example.com"]["status"] == "active"
    _deactivate(scim, created.json()["id"])
    assert users(store, directory)["zed@example.com"]["status"] == "deactivated"


def test_tokens_and_the_push_setting(app_client: TestClient, store: Store, company: Snapshot) -> None:
    one = pulled_directory(store, company, "One")
    two = pulled_directory(store, company, "Two")
    without = pulled_directory(store, company, "Pulled only", push=False)
    token_one, token_two = issue(store, one), issue(store, two)
    headers = {"Authorization": f"Bearer {token_one}"}
    assert app_client.get(f"/scim/v2/{one}/Users", headers=headers).status_code == 200
    for other in (two, "Two", without):
        assert app_client.get(f"/scim/v2/{other}/Users", headers=headers).status_code == 401
    written = Scim(app_client, two, token_one)("POST", "/Users", user_body("eve@example.com", external_id="ann"))
    assert written.status_code == 401
    assert Scim(app_client, two, token_two)("GET", "/Users").json()["totalResults"] == 0
    # A directory that does not receive pushes gets no token; a bad value is refused naming the field.
    with store.transaction() as session, pytest.raises(ConfigurationError) as refused:
        scim_tokens.issue_token(session, dirs.get_directory(session, without))
    assert refused.value.field == "push"
    with pytest.raises(ConfigurationError) as bad:
        validate_document({"name": "x", "provider": "file", "push": "sometimes"})
    assert bad.value.field == "settings.push"
