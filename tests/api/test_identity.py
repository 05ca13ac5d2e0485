"""/api/v1 users, groups, organizations, roles; /healthz and /metrics — on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from directory_fixtures import directory_document, seed

from accessiq.services import runs
from accessiq.store.database import Store

pytestmark = pytest.mark.usefixtures("orgs")


@pytest.fixture
def synced(api: Any, store: Store, snapshot: Any) -> int:
    created = api("POST", "/api/v1/directories", json=directory_document(seed(snapshot))).json()
    queued = api("POST", f"/api/v1/directories/{created['id']}/sync").json()
    runs.run_now(store, queued["id"])
    return int(created["id"])


def test_users(api: Any, synced: int) -> None:
    users = api("GET", "/api/v1/users").json()
    assert [u["email"] for u in users] == [f"user{i}@example.com" for i in range(5)]
    u1 = api("GET", "/api/v1/users/user1@example.com").json()
    assert u1["directory"] == "Acme HR"
    assert u1["external_id"] == "u1"
    assert u1["groups"] == ["Engineering", "Platform"]
    assert {(m["organization"], m["role"]) for m in u1["memberships"]} == {("acme", "member"), ("acme-eng", "admin")}
    assert api("GET", f"/api/v1/users/{u1['id']}").json() == u1

    assert len(api("GET", "/api/v1/users?q=user3").json()) == 1
    assert len(api("GET", f"/api/v1/users?directory={synced}&limit=2").json()) == 2
    page = api("GET", "/api/v1/users?limit=2&offset=4")
    assert [u["email"] for u in page.json()] == ["user4@example.com"]
    assert api("GET", "/api/v1/users?status=gone").status_code == 422
    assert api("GET", "/api/v1/users/nobody@example.com").status_code == 404


def test_a_look_alike_of_an_existing_email_is_refused_as_a_local_user(api: Any) -> None:
    assert api("POST", "/api/v1/users", json={"email": "ceo@example.com"}).status_code == 201
    for look_alike, reason in (
        ("c\u0435o@example.com", "mixes scripts"),  # Cyrillic e
        ("\uff43\uff45\uff4f@example.com", "look-alike characters"),  # full-width
        ("ceo\u200b@example.com", "invisible or control characters"),
    ):
        refused = api("POST", "/api/v1/users", json={"email": look_alike})
        assert refused.status_code == 422, look_alike
        assert refused.json()["error"]["field"] == "email"
        assert reason in refused.json()["error"]["message"]
    assert api("POST", "/api/v1/users", json={"email": "CEO@Example.com"}).status_code == 409
    assert [u["email"] for u in api("GET", "/api/v1/users").json()] == ["ceo@example.com"]


def test_local_users_and_admin_deactivation(api: Any) -> None:
    created = api("POST", "/api/v1/users", json={"email": "Local@Example.com", "given_name": "Lo"})
    assert created.status_code == 201
    assert created.json()["directory"] is None
    assert api("POST", "/api/v1/users", json={"email": "local@example.com"}).status_code == 409
    invalid = api("POST", "/api/v1/users", json={"email": "not-an-email"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["field"] == "email"

    off = api("POST", "/api/v1/users/local@example.com/deactivate").json()
    assert off["status"] == "deactivated"
    assert off["deactivated_by"] == "admin"
    assert api("GET", "/api/v1/users?status=deactivated").json()[0]["email"] == "Local@Example.com"
    on = api("POST", f"/api/v1/users/{off['id']}/activate").json()
    assert on["status"] == "active"

    refused = api("DELETE", "/api/v1/users/local@example.com")
    assert refused.status_code == 409 and "deactivate first" in refused.json()["error"]["hint"]
    api("POST", "/api/v1/users/local@example.com/deactivate")
    assert api("DELETE", "/api/v1/users/local@example.com").status_code == 204
    assert api("GET", "/api/v1/users/local@example.com").status_code == 404


def test_groups(api: Any, synced: int) -> None:
    groups = api("GET", "/api/v1/groups").json()
    assert [(g["name"], g["members"]) for g in groups] == [("Engineering", 2), ("Platform", 1), ("Sales", 3)]
    assert len(api("GET", f"/api/v1/groups?directory={synced}&limit=1").json()) == 1


def test_organizations_and_manual_memberships(api: Any, synced: int) -> None:
    listed = api("GET", "/api/v1/organizations").json()
    assert [(o["slug"], o["members"]) for o in listed] == [("acme", 5), ("acme-eng", 2)]
    created = api("POST", "/api/v1/organizations", json={"slug": "partners", "name": "Partners"})
    assert created.status_code == 201
    assert api("POST", "/api/v1/organizations", json={"slug": "partners"}).status_code == 409
    assert api("POST", "/api/v1/organizations", json={"slug": "Not A Slug"}).status_code == 422
    assert api("GET", "/api/v1/organizations/partners").json()["name"] == "Partners"
    assert api("GET", "/api/v1/organizations/nowhere").status_code == 404

    added = api("POST", "/api/v1/organizations/partners/members", json={"user": "user0@example.com", "role": "owner"})
    assert added.status_code == 201
    assert added.json() == {
        "organization": "partners",
        "user": "user0@example.com",
        "role": "owner",
        "origin": "manual",
    }
    memberships = api("GET", "/api/v1/users/user0@example.com").json()["memberships"]
    manual = next(m for m in memberships if m["organization"] == "partners")
    assert (manual["role"], manual["origin"], manual["granted_by"]["kind"]) == ("owner", "manual", "manual")
    assert (
        api(
            "POST", "/api/v1/organizations/partners/members", json={"user": "user0@example.com", "role": "emperor"}
        ).status_code
        == 404
    )

    assert api("DELETE", "/api/v1/organizations/partners/members/user0@example.com").status_code == 204
    assert api("DELETE", "/api/v1/organizations/partners/members/user0@example.com").status_code == 404


def test_memberships_say_why_through_nested_groups(api: Any, synced: int) -> None:
    """user1 is in Engineering directly; a new user only in Platform gets admin through Engineering ⊃ Platform."""
    u3 = api("GET", "/api/v1/users/user3@example.com").json()
    by_org = {m["organization"]: m for m in u3["memberships"]}
    assert by_org["acme"]["granted_by"] == {
        "kind": "directory-default",
        "directory_id": synced,
        "directory": "Acme HR",
        "mapping": None,
        "path": [],
        "note": None,
        "summary": "default organization of directory Acme HR",
    }
    eng = by_org["acme-eng"]["granted_by"]
    assert eng["kind"] == "group-mapping" and eng["directory"] == "Acme HR"
    assert {k: eng["mapping"][k] for k in ("source_group", "organization", "role")} == {
        "source_group": "Engineering",
        "organization": "acme-eng",
        "role": "admin",
    }
    assert [step["name"] for step in eng["path"]] == ["Engineering"]
    assert u3["effective_roles"] == [
        {"organization": "acme", "role": "member"},
        {"organization": "acme-eng", "role": "admin"},
    ]


def test_a_nested_member_is_explained_by_the_group_path(api: Any, store: Store, snapshot: Any) -> None:
    seed(snapshot)
    snapshot.user("nia", "nia@example.com")
    snapshot.group("g-platform", "Platform", members=["u1", "nia"])
    created = api("POST", "/api/v1/directories", json=directory_document(snapshot.write())).json()
    runs.run_now(store, api("POST", f"/api/v1/directories/{created['id']}/sync").json()["id"])
    groups = {g["name"]: g["id"] for g in api("GET", "/api/v1/groups").json()}

    nia = api("GET", "/api/v1/users/nia@example.com").json()
    eng = next(m for m in nia["memberships"] if m["organization"] == "acme-eng")
    assert eng["effective"] is True and eng["role"] == "admin"
    assert eng["granted_by"]["path"] == [
        {"id": groups["Engineering"], "name": "Engineering"},
        {"id": groups["Platform"], "name": "Platform"},
    ]
    assert eng["granted_by"]["summary"] == (
        "mapping Engineering → acme-eng (admin) of directory Acme HR, through Engineering ⊃ Platform ⊃ nia@example.com"
    )

    members = api("GET", "/api/v1/organizations/acme-eng/members").json()
    assert [(m["email"], m["role"]) for m in members] == [
        ("nia@example.com", "admin"),
        ("user1@example.com", "admin"),
        ("user3@example.com", "admin"),
    ]
    assert [s["name"] for s in members[0]["memberships"][0]["granted_by"]["path"]] == ["Engineering", "Platform"]
    assert api("GET", "/api/v1/organizations/nowhere/members").status_code == 404


def test_a_manual_grant_outranks_and_the_effective_role_follows(api: Any, synced: int) -> None:
    api("POST", "/api/v1/organizations/acme/members", json={"user": "user3@example.com", "role": "owner"})
    u3 = api("GET", "/api/v1/users/user3@example.com").json()
    in_acme = [
        (m["role"], m["effective"], m["granted_by"]["kind"]) for m in u3["memberships"] if m["organization"] == "acme"
    ]
    assert in_acme == [("owner", True, "manual"), ("member", False, "directory-default")]
    assert {"organization": "acme", "role": "owner"} in u3["effective_roles"]


def test_activating_a_user_the_directory_disabled_warns_that_sync_deactivates_them_again(
    api: Any, store: Store, snapshot: Any
) -> None:
    document = directory_document(seed(snapshot), safety={"max_deactivation_percent": 100})
    created = api("POST", "/api/v1/directories", json=document).json()
    runs.run_now(store, api("POST", f"/api/v1/directories/{created['id']}/sync").json()["id"])
    snapshot.find("u1")["active"] = False
    snapshot.remove("u2")
    snapshot.write()
    runs.run_now(store, api("POST", f"/api/v1/directories/{created['id']}/sync").json()["id"])
    assert api("GET", "/api/v1/users/user1@example.com").json()["deactivated_by"] == "sync"

    disabled = api("POST", "/api/v1/users/user1@example.com/activate").json()
    assert disabled["status"] == "active"
    assert disabled["warning"] == (
        "user1@example.com is disabled in Acme HR, so the next sync of Acme HR will deactivate them again. "
        "To keep them active, enable them in Acme HR first, or set the deactivation setting of Acme HR to ignore."
    )
    removed = api("POST", "/api/v1/users/user2@example.com/activate").json()
    assert removed["warning"].startswith("user2@example.com is no longer in Acme HR, so the next sync")
    assert api("POST", "/api/v1/users/user0@example.com/activate").json()["warning"] is None

    # The warning tells the truth: the next sync deactivates both again.
    runs.run_now(store, api("POST", f"/api/v1/directories/{created['id']}/sync").json()["id"])
    assert api("GET", "/api/v1/users/user1@example.com").json()["status"] == "deactivated"
    assert api("GET", "/api/v1/users/user2@example.com").json()["status"] == "deactivated"

    # With `deactivation: ignore` the directory leaves them be, so there is nothing to warn about.
    api("PATCH", f"/api/v1/directories/{created['id']}/settings", json={"deactivation": "ignore"})
    assert api("POST", "/api/v1/users/user1@example.com/activate").json()["warning"] is None


def test_roles(api: Any) -> None:
    assert [r["name"] for r in api("GET", "/api/v1/roles").json()] == ["owner", "admin", "member", "viewer"]
    created = api("POST", "/api/v1/roles", json={"name": "auditor", "rank": 150})
    assert created.status_code == 201
    assert created.json() == {"name": "auditor", "rank": 150, "builtin": False}
    assert api("POST", "/api/v1/roles", json={"name": "auditor", "rank": 1}).status_code == 409
    assert api("POST", "/api/v1/roles", json={"name": "Bad Name", "rank": 1}).status_code == 422


def test_healthz(api: Any, store: Store) -> None:
    response = api("GET", "/healthz", token=None)
    assert response.json() == {"status": "ok", "database": store.dialect}


def test_metrics(api: Any, store: Store, synced: int) -> None:
    text = api("GET", "/metrics", token=None).text
    assert 'accessiq_sync_runs{directory="Acme HR",status="succeeded"} 1.0' in text
    assert 'accessiq_users_synced{directory="Acme HR",status="active"} 5.0' in text
    assert 'accessiq_last_successful_sync_timestamp_seconds{directory="Acme HR"}' in text
    assert 'accessiq_sync_run_duration_seconds_count{directory="Acme HR"} 1.0' in text
    assert 'accessiq_sync_users_changed_total{action="created",directory="Acme HR"} 5.0' in text


def test_searches_take_like_wildcards_literally(api: Any) -> None:
    for email in ("a_b@example.com", "axb@example.com", "100%@example.com", "1000@example.com", "back\\slash@x.org"):
        assert api("POST", "/api/v1/users", json={"email": email}).status_code == 201

    def found(q: str) -> list[str]:
        return sorted(u["email"] for u in api("GET", "/api/v1/users", params={"q": q}).json())

    assert found("_") == ["a_b@example.com"]
    assert found("a_b") == ["a_b@example.com"]
    assert found("%") == ["100%@example.com"]
    assert found("0%@") == ["100%@example.com"]
    assert found("\\") == ["back\\slash@x.org"]
    assert found("k\\s") == ["back\\slash@x.org"]
    assert len(found("@")) == 5
