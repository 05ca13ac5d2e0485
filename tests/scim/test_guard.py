"""The safety guard holds for pushes: a burst of deletes is held for approval, and nothing is lost."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accessiq.services import runs
from accessiq.store.database import Store

from .conftest import Scim, issue, make_directory, push_runs, user_body, users


def test_a_burst_of_deletes_is_held_then_applied_after_approval(app_client: TestClient, store: Store) -> None:
    directory = make_directory(store, safety={"max_deactivations": 2, "max_deactivation_percent": 100})
    scim = Scim(app_client, directory, issue(store, directory))
    ids = [scim("POST", "/Users", user_body(f"u{i}@example.com")).json()["id"] for i in range(5)]

    assert scim("DELETE", f"/Users/{ids[0]}").status_code == 204
    assert scim("DELETE", f"/Users/{ids[1]}").status_code == 204
    # The third delete within the hour passes max_deactivations (2): held, and the client told to retry.
    held = scim("DELETE", f"/Users/{ids[2]}")
    assert held.status_code == 503, held.text
    assert int(held.headers["retry-after"]) > 0
    assert held.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "approval" in held.json()["detail"]
    assert users(store, directory)["u2@example.com"]["status"] == "active"
    assert scim("GET", f"/Users/{ids[2]}").status_code == 200  # nothing applied, the mirror too
    blocked = push_runs(store, directory)[-1]
    assert blocked["status"] == "blocked" and blocked["trigger"] == "push"
    assert blocked["counts"]["users_deactivated"] == 1

    # The client retries while no one has approved: held again, still nothing applied.
    assert scim("DELETE", f"/Users/{ids[2]}").status_code == 503
    retry = push_runs(store, directory)[-1]
    runs.approve(store, retry["id"])
    assert users(store, directory)["u2@example.com"] == {
        "status": "deactivated",
        "orgs": {},
        "groups": [],
        "given_name": "U2",
    }
    # Its next retry finds the user gone, as Entra and Okta take a 404 to a DELETE.
    assert scim("DELETE", f"/Users/{ids[2]}").status_code == 404
    # The approval starts a new window: the rest of the burst goes through.
    assert scim("DELETE", f"/Users/{ids[3]}").status_code == 204
    assert scim("DELETE", f"/Users/{ids[4]}").status_code == 204
    assert {u["status"] for u in users(store, directory).values()} == {"deactivated"}
    assert scim("GET", "/Users").json()["totalResults"] == 0


def test_deactivating_pushes_count_against_the_percent_threshold(app_client: TestClient, store: Store) -> None:
    directory = make_directory(store, safety={"max_deactivations": 500, "max_deactivation_percent": 40})
    scim = Scim(app_client, directory, issue(store, directory))
    ids = [scim("POST", "/Users", user_body(f"p{i}@example.com")).json()["id"] for i in range(5)]
    off = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert scim("PATCH", f"/Users/{ids[0]}", off).status_code == 200  # 1 of 5: 20%
    assert scim("PATCH", f"/Users/{ids[1]}", off).status_code == 200  # 2 of 5: 40%
    assert scim("PATCH", f"/Users/{ids[2]}", off).status_code == 503  # 3 of 5: 60%
    assert users(store, directory)["p2@example.com"]["status"] == "active"


def test_approval_lets_a_held_burst_through_after_other_pushes_moved_the_store(
    app_client: TestClient, store: Store
) -> None:
    directory = make_directory(store, safety={"max_deactivations": 1, "max_deactivation_percent": 100})
    scim = Scim(app_client, directory, issue(store, directory))
    ids = [scim("POST", "/Users", user_body(f"v{i}@example.com")).json()["id"] for i in range(4)]
    assert scim("DELETE", f"/Users/{ids[0]}").status_code == 204
    assert scim("DELETE", f"/Users/{ids[1]}").status_code == 503
    held = push_runs(store, directory)[-1]
    # The identity provider goes on pushing other changes meanwhile.
    assert scim("POST", "/Users", user_body("newcomer@example.com")).status_code == 201
    approval = runs.approve(store, held["id"])
    assert approval.status == "succeeded" and approval.trigger == "approval"
    assert users(store, directory)["v1@example.com"]["status"] == "active"  # nothing stale applied
    # The held delete comes back, and the burst goes on from a new window.
    assert scim("DELETE", f"/Users/{ids[1]}").status_code == 204
    assert users(store, directory)["v1@example.com"]["status"] == "deactivated"
    assert scim("DELETE", f"/Users/{ids[2]}").status_code == 503  # a second over the limit is held again


def test_a_held_write_sent_again_stays_held_by_the_same_run(app_client: TestClient, store: Store) -> None:
    directory = make_directory(store, safety={"max_deactivations": 1, "max_deactivation_percent": 100})
    scim = Scim(app_client, directory, issue(store, directory))
    ids = [scim("POST", "/Users", user_body(f"w{i}@example.com")).json()["id"] for i in range(4)]
    off = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    assert scim("PATCH", f"/Users/{ids[0]}", off).status_code == 200
    first = scim("PATCH", f"/Users/{ids[1]}", off)
    assert first.status_code == 503
    held = push_runs(store, directory)[-1]
    assert held["status"] == "blocked"
    # Entra and Okta send it again and again until someone approves: one blocked run, named each time.
    for _ in range(3):
        again = scim("PATCH", f"/Users/{ids[1]}", off)
        assert again.status_code == 503
        assert f"run {held['id']}" in again.json()["detail"]
    assert [r["id"] for r in push_runs(store, directory) if r["status"] == "blocked"] == [held["id"]]
    # Another write over the limit is another change: held by a run of its own.
    assert scim("DELETE", f"/Users/{ids[2]}").status_code == 503
    assert len([r for r in push_runs(store, directory) if r["status"] == "blocked"]) == 2
    runs.approve(store, held["id"])
    assert users(store, directory)["w1@example.com"]["status"] == "deactivated"
    assert scim("PATCH", f"/Users/{ids[1]}", off).status_code == 200
