"""End to end: a directory document pointing at the Okta sandbox, synced by the real engine (SQLite).

A full sync, then ten changes of every kind applied exactly by an incremental
sync that downloads only what changed, a permanent delete found in the System
Log, and each error case ending as a failed run with an actionable message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accessiq.sandbox.okta import Fault, OktaSandbox
from accessiq.services import directories as dirs
from accessiq.services import identity
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.sync.document import validate_document
from accessiq.sync.state import load_cursor

from ..runs_kit import sync
from .okta_kit import OktaKit, fresh_okta, okta_server


@pytest.fixture(scope="module")
def okta_server_module() -> Iterator[tuple[OktaSandbox, str]]:
    with okta_server() as server:
        yield server


@pytest.fixture
def okta(okta_server_module: tuple[OktaSandbox, str]) -> Iterator[OktaKit]:
    with fresh_okta(okta_server_module) as kit:
        yield kit


def connect(store: Store, okta: OktaKit, **connection: Any) -> int:
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        document = {
            "name": "Acme Okta",
            "provider": "okta",
            "connection": {"org_url": okta.url, "api_token": okta.sandbox.api_token, **connection},
            "settings": {"default_organization": "acme", "attribute_mapping": {"department": "profile.department"}},
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def users_by_id(store: Store) -> dict[str, dict[str, Any]]:
    with store.transaction() as session:
        return {u["external_id"]: u for u in identity.users_json(session, identity.list_users(session))}


def test_a_full_sync_then_an_incremental_sync_of_ten_changes(sqlite_store: Store, okta: OktaKit) -> None:
    sandbox = okta.sandbox
    directory = connect(sqlite_store, okta)
    first = sync(sqlite_store, directory)
    assert first["status"] == "succeeded", first
    statuses = sandbox.snapshot()["users"]
    active = sorted(u for u, s in statuses.items() if s not in ("SUSPENDED", "DEPROVISIONED"))
    assert first["counts"]["users_created"] == len(active)
    assert first["counts"]["groups_created"] == sum(
        1 for g in sandbox.snapshot()["groups"].values() if g["type"] != "BUILT_IN"
    )
    okta_groups = sorted(g for g, v in sandbox.snapshot()["groups"].items() if v["type"] == "OKTA_GROUP")

    hires = [sandbox.add_user({"firstName": "New", "lastName": f"Hire{n}"}) for n in range(2)]
    for uid in active[:3]:
        sandbox.update_user(uid, {"department": "Finance"})
    sandbox.set_status(active[3], "SUSPENDED")
    sandbox.delete_user(active[4])  # deactivated (DEPROVISIONED)
    sandbox.delete_user(active[5], permanent=True)
    sandbox.change_members(okta_groups[0], add=[hires[0]["id"]])
    leaver = sorted(sandbox.members[okta_groups[1]] - {active[5]})[0]
    sandbox.change_members(okta_groups[1], remove=[leaver])
    sandbox.reset_stats()

    second = sync(sqlite_store, directory)
    assert second["status"] == "succeeded", second
    assert second["mode"] == "incremental"
    counts = second["counts"]
    assert counts["users_created"] == 2
    assert counts["users_updated"] == 3
    assert counts["users_deactivated"] == 3
    assert counts["memberships_added"] >= 1 and counts["memberships_removed"] >= 1
    # Only changed objects were downloaded: the 7 users that moved (not the deleted one), no full lists.
    assert sandbox.served["users"] == 7
    users = users_by_id(sqlite_store)
    assert users[active[5]]["status"] == "deactivated"  # found in the System Log
    assert users[active[0]]["attributes"]["department"] == "Finance"
    group_name = sandbox.groups[okta_groups[1]]["profile"]["name"]
    assert group_name not in users[leaver]["groups"]
    assert sandbox.groups[okta_groups[0]]["profile"]["name"] in users[hires[0]["id"]]["groups"]

    third = sync(sqlite_store, directory)
    assert third["status"] == "succeeded" and third["mode"] == "incremental"
    moved = {k: v for k, v in third["counts"].items() if k not in ("users_unchanged", "groups_processed") and v}
    assert moved == {}


def test_the_cursor_moves_only_when_a_run_applies(sqlite_store: Store, okta: OktaKit) -> None:
    directory = connect(sqlite_store, okta)
    assert sync(sqlite_store, directory)["status"] == "succeeded"
    with sqlite_store.transaction() as session:
        before = load_cursor(session, directory)
        assert before is not None
        cursor = before.value
    okta.sandbox.update_user(sorted(okta.sandbox.users)[0], {"title": "CTO"})
    okta.sandbox.inject(Fault(kind="error", status=503, count=50, path_contains="/api/v1/groups"))
    failed = sync(sqlite_store, directory)
    assert failed["status"] == "failed" and "Okta request id" in failed["message"]
    with sqlite_store.transaction() as session:
        after = load_cursor(session, directory)
        assert after is not None and after.value == cursor
    okta.sandbox.faults.clear()
    again = sync(sqlite_store, directory)
    assert again["status"] == "succeeded" and again["counts"]["users_updated"] == 0  # title is not mapped


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda s: s.revoke_api_token(), "E0000011"),
        (lambda s: s.set_permissions(permissions=["users"]), "may read groups"),
        (lambda s: setattr(s.behaviour, "org_exists", False), "connection.org_url"),
    ],
    ids=["revoked-token", "no-group-role", "unknown-org"],
)
def test_error_cases_fail_the_run_with_an_actionable_message(
    sqlite_store: Store, okta: OktaKit, break_it: Any, expected: str
) -> None:
    directory = connect(sqlite_store, okta)
    break_it(okta.sandbox)
    run = sync(sqlite_store, directory)
    assert run["status"] == "failed"
    assert expected in run["message"]
    with sqlite_store.transaction() as session:
        assert identity.list_users(session) == []
