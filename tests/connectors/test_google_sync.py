"""End to end: a directory document pointing at the Google sandbox, synced by the real engine (SQLite).

A full sync scoped to an org unit, then ten changes of every kind applied exactly by the
next (again full) read, a user moved out of the unit and back, and error cases ending as
failed runs with an actionable message and nothing applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.google import USER_READ, GoogleBehaviour, GoogleSandbox
from accessiq.sandbox.google_app import create_app
from accessiq.services import directories as dirs
from accessiq.services import identity
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.sync.document import validate_document

from ..runs_kit import sync

BEHAVIOUR = GoogleBehaviour(users_max=50, groups_max=10, members_max=20)
UNIT = "/Sales"
Google = tuple[GoogleSandbox, str]  # the sandbox and its URL


@pytest.fixture(scope="module")
def server() -> Iterator[Google]:
    sandbox = GoogleSandbox(200, 40, seed=3, behaviour=replace(BEHAVIOUR))
    with SandboxServer(create_app(sandbox)) as running:
        yield sandbox, running.url


@pytest.fixture
def google(server: Google) -> Google:
    sandbox, url = server
    sandbox.reset()
    sandbox.behaviour = replace(BEHAVIOUR)
    return sandbox, url


def in_unit(sandbox: GoogleSandbox, uid: str) -> bool:
    path = sandbox.users[uid]["orgUnitPath"]
    return path == UNIT or path.startswith(UNIT + "/")


def sales_group(sandbox: GoogleSandbox) -> str:
    """The group with the most direct members in the unit (a team group under /Sales)."""
    return max(
        (gid for gid in sandbox.groups if gid != sandbox.everyone_id),
        key=lambda gid: (sum(1 for u in sandbox.direct_users(gid) if in_unit(sandbox, u)), gid),
    )


def connect(store: Store, google: Google, **settings: Any) -> int:
    sandbox, url = google
    group = sandbox.groups[sales_group(sandbox)]
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        identity.create_organization(session, "sales")
        document = {
            "name": "Acme Google",
            "provider": "google",
            "connection": {
                "service_account": json.dumps(sandbox.service_account_key(f"{url}/token")),
                "admin_email": sandbox.admin_email,
                "api_url": url,
                "token_url": f"{url}/token",
            },
            "settings": {
                "default_organization": "acme",
                "user_filter": {"org_units": [UNIT]},
                "attribute_mapping": {"department": "organizations[primary].department"},
                "safety": {"max_deactivations": 500, "max_deactivation_percent": 100},
                **settings,
            },
            # Referenced by email, as Google admins know their groups.
            "group_mappings": [{"source_group": group["email"], "organization": "sales", "role": "admin"}],
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def users_by_id(store: Store) -> dict[str, dict[str, Any]]:
    with store.transaction() as session:
        return {u["external_id"]: u for u in identity.users_json(session, identity.list_users(session))}


def test_an_org_unit_sync_then_ten_changes_applied_exactly(
    sqlite_store: Store, google: tuple[GoogleSandbox, str]
) -> None:
    sandbox, _ = google
    directory = connect(sqlite_store, google)
    first = sync(sqlite_store, directory)
    assert first["status"] == "succeeded", first
    assert first["mode"] == "full" and any("no change feed" in note for note in first["notes"])
    scoped = sorted(uid for uid in sandbox.users if in_unit(sandbox, uid))
    active = [uid for uid in scoped if sandbox.users[uid]["suspended"] is False and not sandbox.users[uid]["archived"]]
    assert first["counts"]["users_created"] == len(active)
    users = users_by_id(sqlite_store)
    assert set(users) == set(active)  # nobody from /Salesforce Admins or elsewhere
    # The engine hands the user filter's units to the connector, which asks Google for them only.
    queries = {r.query for r in sandbox.requests if r.path.endswith("/users")}
    assert queries and all("orgUnitPath%3D%27%2FSales%27" in q for q in queries)
    assert all(u["memberships"] for u in users.values())

    group = sales_group(sandbox)
    members = sorted(u for u in sandbox.direct_users(group) if u in active)
    others = [uid for uid in active if uid not in members]
    hires = [
        sandbox.add_user(
            {"name": {"givenName": "New", "familyName": f"Hire{n}", "fullName": f"New Hire{n}"}},
            org_unit="/Sales/EMEA Sales",
        )
        for n in range(2)
    ]
    for uid in others[:3]:
        sandbox.update_user(uid, {"organizations": [{"department": "Finance", "primary": True}]})
    sandbox.set_state(others[3], suspended=True)
    sandbox.set_state(others[4], archived=True)
    sandbox.delete_user(others[5])
    sandbox.change_members(group, add=[hires[0]["id"]], remove=[members[0]])
    second = sync(sqlite_store, directory)
    assert second["status"] == "succeeded", second
    counts = second["counts"]
    assert (counts["users_created"], counts["users_updated"], counts["users_deactivated"]) == (2, 3, 3)
    assert counts["users_reactivated"] == 0 and counts["groups_created"] == counts["groups_deleted"] == 0
    users = users_by_id(sqlite_store)
    assert users[others[0]]["attributes"]["department"] == "Finance"
    assert {users[uid]["status"] for uid in others[3:6]} == {"deactivated"}
    name = sandbox.groups[group]["name"]
    assert name in users[hires[0]["id"]]["groups"] and name not in users[members[0]]["groups"]
    assert any(m["organization"] == "sales" and m["role"] == "admin" for m in users[hires[0]["id"]]["memberships"])
    assert not any(m["organization"] == "sales" for m in users[members[0]]["memberships"])

    third = sync(sqlite_store, directory)
    moved = {k: v for k, v in third["counts"].items() if k not in ("users_unchanged", "groups_processed") and v}
    assert third["status"] == "succeeded" and moved == {}


def test_a_user_moved_out_of_the_unit_is_deactivated_and_back_in_reactivated(
    sqlite_store: Store, google: tuple[GoogleSandbox, str]
) -> None:
    sandbox, _ = google
    directory = connect(sqlite_store, google)
    assert sync(sqlite_store, directory)["status"] == "succeeded"
    uid = sorted(u for u, s in users_by_id(sqlite_store).items() if sandbox.users[u]["orgUnitPath"] != UNIT)[0]
    home = sandbox.users[uid]["orgUnitPath"]
    sandbox.move_user(uid, "/Salesforce Admins")  # a sibling whose name starts like /Sales
    out = sync(sqlite_store, directory)
    assert out["counts"]["users_deactivated"] == 1 and users_by_id(sqlite_store)[uid]["status"] == "deactivated"
    sandbox.move_user(uid, home)
    back = sync(sqlite_store, directory)
    assert back["counts"]["users_reactivated"] == 1 and users_by_id(sqlite_store)[uid]["status"] == "active"


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda s: s.set_delegation([USER_READ]), "admin.directory.group.readonly"),
        (lambda s: s.set_admin(s.admin_email, []), "may not read users"),
        (lambda s: s.set_delegation(None), "no domain-wide delegation"),
        (lambda s: s.revoke_key(), "deleted or disabled"),
    ],
    ids=["missing-scope", "not-an-admin", "no-delegation", "deleted-key"],
)
def test_error_cases_fail_the_run_with_an_actionable_message(
    sqlite_store: Store, google: tuple[GoogleSandbox, str], break_it: Any, expected: str
) -> None:
    sandbox, _ = google
    directory = connect(sqlite_store, google)
    break_it(sandbox)
    run = sync(sqlite_store, directory)
    assert run["status"] == "failed"
    assert expected in run["message"]
    with sqlite_store.transaction() as session:
        assert identity.list_users(session) == []


def test_an_unknown_org_unit_fails_the_run_naming_the_setting(
    sqlite_store: Store, google: tuple[GoogleSandbox, str]
) -> None:
    directory = connect(sqlite_store, google, user_filter={"org_units": ["/Nowhere"]})
    run = sync(sqlite_store, directory)
    assert run["status"] == "failed" and "/Nowhere" in run["message"]
