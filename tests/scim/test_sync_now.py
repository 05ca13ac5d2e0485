"""A run started by hand on a push directory plans again from the mirror: nothing is lost or invented."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accessiq.services import identity, runs
from accessiq.store.database import Store

from .conftest import ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA, Scim, issue, make_directory, user_body, users


def test_sync_now_replans_from_the_mirror(app_client: TestClient, store: Store, directory: int) -> None:
    scim = Scim(app_client, directory, issue(store, directory))
    extended = {"schemas": [USER_SCHEMA, ENTERPRISE], ENTERPRISE: {"department": "R&D"}}
    ann = scim("POST", "/Users", user_body("ann@example.com", **extended)).json()["id"]
    scim("POST", "/Users", user_body("ben@example.com", active=False))
    scim("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": [{"value": ann}]})
    before = users(store, directory)

    # Unchanged settings: the run reads nothing new and changes nothing.
    run = runs.sync_in_foreground(store, directory)
    assert run.status == "succeeded" and run.trigger == "manual"
    moved = ("users_created", "users_updated", "users_deactivated", "memberships_added", "memberships_removed")
    assert {k: run.counts[k] for k in moved} == dict.fromkeys(moved, 0)
    assert users(store, directory) == before
    assert scim("GET", "/Users").json()["totalResults"] == 2

    # A new mapping reaches every pushed user at the next run, the enterprise extension included.
    make_directory(
        store,
        safety={"max_deactivations": 500, "max_deactivation_percent": 100},
        attribute_mapping={"department": "enterprise.department"},
    )
    assert runs.sync_in_foreground(store, directory).status == "succeeded"
    with store.read() as session:
        ann_row = next(u for u in identity.list_users(session) if u.email == "ann@example.com")
        assert ann_row.attributes == {"department": "R&D"}
    assert users(store, directory) == before
