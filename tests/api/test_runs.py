"""/api/v1/runs on SQLite and PostgreSQL: the sync log, dry runs, blocked runs, approve, reject, cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from directory_fixtures import directory_document, seed

from accessiq.jobs import queue
from accessiq.services import runs
from accessiq.store.database import Store

pytestmark = pytest.mark.usefixtures("orgs")


@pytest.fixture
def directory(api: Any, snapshot: Any) -> int:
    document = directory_document(seed(snapshot), safety={"max_deactivations": 2, "max_deactivation_percent": 30})
    response = api("POST", "/api/v1/directories", json=document)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _sync(api: Any, store: Store, directory: int, **body: Any) -> dict[str, Any]:
    queued = api("POST", f"/api/v1/directories/{directory}/sync", json=body)
    assert queued.status_code == 202, queued.text
    runs.run_now(store, queued.json()["id"])
    return dict(api("GET", f"/api/v1/runs/{queued.json()['id']}").json())


def test_run_shape_and_changes(api: Any, store: Store, directory: int) -> None:
    run = _sync(api, store, directory)
    assert set(run) >= {
        "id",
        "directory",
        "status",
        "mode",
        "dry_run",
        "trigger",
        "started_at",
        "finished_at",
        "counts",
        "errors",
    }
    assert run["directory"] == {"id": directory, "name": "Acme HR"}
    assert run["changes"] is None
    with_changes = api("GET", f"/api/v1/runs/{run['id']}?changes=true").json()
    assert len(with_changes["changes"]) > 5

    users = api("GET", f"/api/v1/runs/{run['id']}/changes?object=user").json()
    assert {c["action"] for c in users} == {"create"}
    assert len(users) == 5
    grants = api("GET", f"/api/v1/runs/{run['id']}/changes?object=org_membership&action=grant").json()
    assert {c["detail"]["organization"] for c in grants} == {"acme", "acme-eng"}
    page = api("GET", f"/api/v1/runs/{run['id']}/changes?limit=2&offset=1")
    assert len(page.json()) == 2
    assert page.headers["X-Next-Offset"] == "3"
    assert api("GET", f"/api/v1/runs/{run['id']}/changes?object=planet").status_code == 422


def test_update_changes_have_before_and_after(api: Any, store: Store, snapshot: Any, directory: int) -> None:
    _sync(api, store, directory)
    snapshot.find("u2")["given_name"] = "Renamed"
    snapshot.write()
    run = _sync(api, store, directory)
    assert run["counts"]["users_updated"] == 1
    update = api("GET", f"/api/v1/runs/{run['id']}/changes?object=user&action=update").json()
    assert update[0]["label"] == "user2@example.com"
    assert update[0]["detail"]["changes"]["given_name"] == ["U2", "Renamed"]


def test_list_and_filter(api: Any, store: Store, directory: int) -> None:
    dry = _sync(api, store, directory, dry_run=True)
    api("POST", f"/api/v1/runs/{dry['id']}/reject")
    real = _sync(api, store, directory)
    listed = api("GET", "/api/v1/runs").json()
    assert [r["id"] for r in listed] == [real["id"], dry["id"]]
    assert [r["id"] for r in api("GET", "/api/v1/runs?dry_run=true").json()] == [dry["id"]]
    assert [r["id"] for r in api("GET", "/api/v1/runs?status=succeeded&dry_run=false").json()] == [real["id"]]
    assert [r["id"] for r in api("GET", "/api/v1/runs?directory=acme%20hr&limit=1").json()] == [real["id"]]
    assert api("GET", "/api/v1/runs?status=exploded").status_code == 422
    assert api("GET", "/api/v1/runs?directory=nope").status_code == 404
    assert api("GET", "/api/v1/runs/999999").status_code == 404


def test_dry_run_then_apply_exactly_that_plan(api: Any, store: Store, directory: int) -> None:
    dry = _sync(api, store, directory, dry_run=True)
    assert dry["dry_run"] is True
    assert dry["pending_approval"] is True
    assert api("GET", "/api/v1/users").json() == []

    applied = api("POST", f"/api/v1/runs/{dry['id']}/approve")
    assert applied.status_code == 200, applied.text
    assert applied.json()["trigger"] == "approval"
    assert applied.json()["source_run"] == dry["id"]
    assert applied.json()["counts"]["users_created"] == 5
    assert len(api("GET", "/api/v1/users").json()) == 5
    assert api("GET", f"/api/v1/runs/{dry['id']}").json()["resolution"] == "approved"

    again = api("POST", f"/api/v1/runs/{dry['id']}/approve")
    assert again.status_code == 409
    assert again.json()["error"]["kind"] == "conflict"


def test_blocked_run_is_approved_or_rejected(api: Any, store: Store, snapshot: Any, directory: int) -> None:
    _sync(api, store, directory)
    for ext in ("u0", "u1", "u2"):
        snapshot.remove(ext)
    snapshot.write()
    blocked = _sync(api, store, directory)
    assert blocked["status"] == "blocked"
    assert blocked["pending_approval"] is True
    assert "deactivate" in blocked["message"]
    active = api("GET", "/api/v1/users?status=active").json()
    assert len(active) == 5

    rejected = api("POST", f"/api/v1/runs/{blocked['id']}/reject")
    assert rejected.json()["resolution"] == "rejected"
    assert api("POST", f"/api/v1/runs/{blocked['id']}/approve").status_code == 409

    blocked_again = _sync(api, store, directory)
    approved = api("POST", f"/api/v1/runs/{blocked_again['id']}/approve").json()
    assert approved["counts"]["users_deactivated"] == 3
    assert len(api("GET", "/api/v1/users?status=deactivated").json()) == 3


def test_approval_refused_when_the_store_moved(api: Any, store: Store, snapshot: Any, directory: int) -> None:
    dry = _sync(api, store, directory, dry_run=True)
    _sync(api, store, directory)
    refused = api("POST", f"/api/v1/runs/{dry['id']}/approve")
    assert refused.status_code == 409
    assert refused.json()["error"]["kind"] == "plan_rejected"
    assert refused.json()["error"]["hint"]


def test_cancel(api: Any, store: Store, directory: int) -> None:
    queued = api("POST", f"/api/v1/directories/{directory}/sync").json()
    canceled = api("POST", f"/api/v1/runs/{queued['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert api("POST", f"/api/v1/runs/{queued['id']}/cancel").status_code == 409
    assert api("POST", "/api/v1/runs/424242/cancel").status_code == 404


def test_progress_is_exposed_for_polling(api: Any, store: Store, directory: int) -> None:
    run = _sync(api, store, directory)
    assert run["progress"]["phase"] == "done"
    assert run["progress"]["users"] == 5


def test_sync_now_recovers_a_run_whose_process_died(api: Any, store: Store, directory: int) -> None:
    queued = api("POST", f"/api/v1/directories/{directory}/sync", json={}).json()
    # A process claimed it and died: its lease lapsed a second ago and nobody renews it.
    queue.claim_run(store, queued["id"], "gone:1:cli:dead", timedelta(seconds=-1))
    shown = api("GET", f"/api/v1/runs/{queued['id']}").json()
    assert (shown["status"], shown["lost"], shown["holder"]) == ("running", True, "gone:1:cli:dead")

    # Sync Now fails it as a worker would, and answers with the retry that recovery queued.
    again = api("POST", f"/api/v1/directories/{directory}/sync", json={})
    assert again.status_code == 200, again.text
    assert again.json()["id"] != queued["id"] and again.json()["status"] == "queued"
    assert again.json()["notes"] == [f"retry of run {queued['id']}, whose worker was lost"]
    lost = api("GET", f"/api/v1/runs/{queued['id']}").json()
    assert lost["status"] == "failed" and lost["lost"] is False
    assert lost["message"].startswith("worker lost: gone:1:cli:dead stopped renewing its lease")
    assert runs.run_now(store, again.json()["id"]).status == "succeeded"
