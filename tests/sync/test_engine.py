"""The whole pipeline on a real store (SQLite and PostgreSQL) through the file provider."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from accessiq.errors import ConflictError, PlanRejectedError
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.store.tables import Cursor, Directory, OrganizationMembership, RunChange, SourceObject, User
from accessiq.sync.document import validate_document

from ..conftest import Snapshot


def connect(store: Store, snapshot: Snapshot, orgs: tuple[str, ...] = ("acme",), **document: Any) -> int:
    snapshot.write()
    with store.transaction() as session:
        for slug in orgs:
            if session.scalar(select(func.count()).where(identity.Organization.slug == slug)) == 0:
                identity.create_organization(session, slug)
        doc = {"name": "Corp", "provider": "file", "connection": {"path": str(snapshot.path)}, **document}
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(doc), policy=InputPolicy.operator()
        )
        return directory.id


def sync(store: Store, directory_id: int, *, dry_run: bool = False, full: bool = False) -> dict[str, Any]:
    with store.transaction() as session:
        run, _ = runs.request_sync(session, session.get_one(Directory, directory_id), dry_run=dry_run, full=full)
        run_id = run.id
    runs.run_now(store, run_id)
    with store.transaction() as session:
        return runs.run_json(session, runs.get_run(session, run_id), changes=True)


def users(store: Store) -> dict[str, dict[str, Any]]:
    with store.transaction() as session:
        return {u["email"]: u for u in identity.users_json(session, identity.list_users(session))}


def company(snapshot: Snapshot) -> None:
    for name in ("ann", "bob", "cat", "dan", "eve"):
        snapshot.user(name, department="R&D" if name < "c" else "Sales")
    snapshot.group("g-eng", "Engineering", ["g-platform", "cat"])
    snapshot.group("g-platform", "Platform", ["ann", "bob"])


def test_first_sync_creates_everything_and_a_rerun_changes_nothing(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(
        store,
        snapshot,
        orgs=("acme", "eng"),
        settings={"default_organization": "acme", "attribute_mapping": {"department": "department"}},
        group_mappings=[{"source_group": "Engineering", "organization": "eng", "role": "admin"}],
    )
    first = sync(store, directory)
    assert first["status"] == "succeeded"
    assert first["counts"] | {} == first["counts"]
    assert {k: first["counts"][k] for k in ("users_created", "groups_created", "groups_processed")} == {
        "users_created": 5,
        "groups_created": 2,
        "groups_processed": 2,
    }
    ann = users(store)["ann@example.com"]
    assert ann["attributes"] == {"department": "R&D"}
    assert ann["groups"] == ["Platform"]
    assert {(m["organization"], m["role"]) for m in ann["memberships"]} == {
        ("acme", "member"),
        ("eng", "admin"),
    }
    assert ann["directory"] == "Corp" and ann["external_id"] == "ann"

    second = sync(store, directory)
    assert second["status"] == "succeeded"
    assert second["changes"] == []
    assert second["counts"]["users_unchanged"] == 5


def test_run_log_records_every_change_with_before_and_after(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    snapshot.find("bob")["given_name"] = "Robert"
    snapshot.remove("eve")
    snapshot.write()
    run = sync(store, directory)
    assert [(c["object"], c["action"], c["external_id"]) for c in run["changes"]] == [
        ("user", "update", "bob"),
        ("user", "deactivate", "eve"),
    ]
    assert run["changes"][0]["detail"]["changes"] == {
        "given_name": ["Bob", "Robert"],
    }
    assert run["counts"]["users_deactivated"] == 1
    assert users(store)["eve@example.com"]["status"] == "deactivated"


def test_one_users_membership_changes_share_a_log_row_and_are_listed_one_by_one(
    store: Store, snapshot: Snapshot
) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    for ext, name in (("g-a", "Alpha"), ("g-b", "Beta"), ("g-c", "Gamma")):
        snapshot.group(ext, name, ["ann", "bob"] if ext == "g-b" else ["ann"])
    snapshot.write()
    run = sync(store, directory)
    memberships = [
        (c["action"], c["external_id"], c["label"], c["detail"])
        for c in run["changes"]
        if c["object"] == "group_membership"
    ]
    assert memberships == [
        ("add", "ann", f"ann@example.com / {name}", {"group": name, "user": "ann@example.com"})
        for name in ("Alpha", "Beta", "Gamma")
    ] + [("add", "bob", "bob@example.com / Beta", {"group": "Beta", "user": "bob@example.com"})]
    with store.read() as session:
        rows = session.scalar(
            select(func.count()).where(RunChange.run_id == run["id"], RunChange.object == "group_membership")
        )
    assert rows == 2, "ann's three additions are one row of the log"
    with store.read() as session:
        listed = runs.run_changes(session, runs.get_run(session, run["id"]), "group_membership", "add")
    assert [c["label"] for c in listed] == [m[2] for m in memberships]


def test_lifecycle_reactivates_only_what_sync_deactivated(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot, settings={"safety": {"max_deactivation_percent": 100}})
    sync(store, directory)
    snapshot.find("ann")["active"] = False
    snapshot.write()
    sync(store, directory)
    with store.transaction() as session:
        identity.deactivate_user(session, identity.get_user(session, "bob@example.com"))
    snapshot.find("ann")["active"] = True
    snapshot.write()
    run = sync(store, directory)
    assert run["counts"]["users_reactivated"] == 1
    after = users(store)
    assert after["ann@example.com"]["status"] == "active"
    assert (after["bob@example.com"]["status"], after["bob@example.com"]["deactivated_by"]) == (
        "deactivated",
        "admin",
    )


def test_dry_run_applies_nothing_and_its_plan_applies_later_exactly(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    preview = sync(store, directory, dry_run=True)
    assert preview["status"] == "succeeded" and preview["dry_run"] and preview["pending_approval"]
    assert users(store) == {}
    applied = runs.approve(store, preview["id"])
    with store.transaction() as session:
        data = runs.run_json(session, runs.get_run(session, applied.id), changes=True)
    assert data["trigger"] == "approval" and data["source_run"] == preview["id"]
    assert data["changes"] == preview["changes"]
    assert len(users(store)) == 5
    # The mirror and cursor moved with it: a sync now plans nothing.
    assert sync(store, directory)["changes"] == []
    with pytest.raises(ConflictError):
        runs.approve(store, preview["id"])


def test_a_stored_plan_is_refused_once_the_store_moved(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    snapshot.find("ann")["given_name"] = "Anna"
    snapshot.write()
    preview = sync(store, directory, dry_run=True)
    with store.transaction() as session:
        identity.deactivate_user(session, identity.get_user(session, "cat@example.com"))
    with pytest.raises(PlanRejectedError, match="changed since run"):
        runs.approve(store, preview["id"])
    assert users(store)["ann@example.com"]["given_name"] == "Ann"


@pytest.mark.parametrize(
    ("safety", "reason"),
    [
        ({"max_deactivations": 1}, "more than safety.max_deactivations (1)"),
        ({"max_deactivation_percent": 30}, "more than safety.max_deactivation_percent (30%)"),
    ],
)
def test_safety_thresholds_block_and_approval_applies(
    store: Store, snapshot: Snapshot, safety: dict[str, Any], reason: str
) -> None:
    company(snapshot)
    directory = connect(store, snapshot, settings={"safety": safety})
    sync(store, directory)
    snapshot.remove("dan")
    snapshot.remove("eve")
    snapshot.write()
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked" and reason in blocked["message"]
    assert blocked["counts"]["users_deactivated"] == 2
    assert all(u["status"] == "active" for u in users(store).values())
    runs.approve(store, blocked["id"])
    assert users(store)["dan@example.com"]["status"] == "deactivated"


def test_an_empty_source_is_blocked_and_rejecting_keeps_everything(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(
        store, snapshot, settings={"safety": {"max_deactivations": 1000, "max_deactivation_percent": 100}}
    )
    sync(store, directory)
    snapshot.users, snapshot.groups = [], []
    snapshot.write()
    blocked = sync(store, directory)
    assert blocked["status"] == "blocked" and "returned no users" in blocked["message"]
    rejected = runs.reject(store, blocked["id"])
    assert rejected.resolution == "rejected"
    assert len([u for u in users(store).values() if u["status"] == "active"]) == 5
    with pytest.raises(ConflictError):
        runs.approve(store, blocked["id"])


def test_a_provider_outage_fails_the_run_and_applies_nothing(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    with store.transaction() as session:
        cursor_before = session.get_one(Cursor, directory).updated_at
    snapshot.path.write_text('{"users": [ {"id": "x"')  # truncated mid-write
    failed = sync(store, directory)
    assert failed["status"] == "failed"
    assert "not valid JSON" in failed["errors"][0]["message"]
    snapshot.path.unlink()
    missing = sync(store, directory)
    assert missing["status"] == "failed" and "does not exist" in missing["errors"][0]["message"]
    assert len(users(store)) == 5
    with store.transaction() as session:
        assert session.get_one(Cursor, directory).updated_at == cursor_before


def test_apply_is_one_transaction(store: Store, snapshot: Snapshot) -> None:
    """A plan that cannot apply in full applies not at all: users, mirror and cursor stay."""
    company(snapshot)
    directory = connect(store, snapshot)
    preview = sync(store, directory, dry_run=True)
    # Someone takes one of the planned emails before the plan is applied.
    with store.transaction() as session:
        identity.create_user(session, "eve@example.com")
    with pytest.raises(ConflictError, match="run the sync again"):
        runs.approve(store, preview["id"])
    assert list(users(store)) == ["eve@example.com"]
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(SourceObject)) == 0
        assert session.get(Cursor, directory) is None


def test_manual_memberships_survive_every_sync(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot, settings={"default_organization": "acme"})
    sync(store, directory)
    with store.transaction() as session:
        org = identity.get_organization(session, "acme")
        identity.add_member(
            session, org, identity.get_user(session, "eve@example.com"), identity.get_role(session, "owner")
        )
    snapshot.remove("eve")
    snapshot.write()
    sync(store, directory)
    eve = users(store)["eve@example.com"]
    assert [(m["organization"], m["role"], m["origin"]) for m in eve["memberships"]] == [("acme", "owner", "manual")]


def test_removing_a_group_mapping_revokes_what_it_granted(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    mapping = [{"source_group": "Platform", "organization": "eng", "role": "admin"}]
    directory = connect(store, snapshot, orgs=("acme", "eng"), group_mappings=mapping)
    sync(store, directory)
    assert users(store)["ann@example.com"]["memberships"][0]["role"] == "admin"
    connect(store, snapshot, orgs=("acme", "eng"), group_mappings=[])
    run = sync(store, directory)
    assert [(c["object"], c["action"]) for c in run["changes"]] == [("org_membership", "revoke")] * 2
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OrganizationMembership)) == 0
        assert dirs.mappings_of(session, session.get_one(Directory, directory), include_removed=True) == []


def test_changing_a_mapping_role_changes_memberships_in_place(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    mapping = {"source_group": "Platform", "organization": "eng", "role": "admin"}
    directory = connect(store, snapshot, orgs=("acme", "eng"), group_mappings=[mapping])
    sync(store, directory)
    connect(store, snapshot, orgs=("acme", "eng"), group_mappings=[mapping | {"role": "viewer"}])
    run = sync(store, directory)
    assert {(c["action"], c["detail"]["role_before"], c["detail"]["role"]) for c in run["changes"]} == {
        ("change", "admin", "viewer")
    }


def test_a_bad_record_is_an_error_on_that_record(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    snapshot.users.append({"email": "noid@example.com"})
    snapshot.user("bad", "not an email")
    directory = connect(store, snapshot)
    run = sync(store, directory)
    assert run["status"] == "succeeded_with_errors"
    assert run["counts"]["users_created"] == 5
    assert {(e["object"], e["external_id"]) for e in run["errors"]} == {("user", None), ("user", "bad")}


def test_linking_an_existing_local_user_by_email(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    with store.transaction() as session:
        identity.create_user(session, "ANN@example.com", given_name="Local")
    directory = connect(store, snapshot)
    run = sync(store, directory)
    assert run["counts"]["users_created"] == 4 and run["counts"]["users_updated"] == 1
    ann = users(store)["ann@example.com"]
    assert (ann["directory"], ann["external_id"], ann["given_name"]) == ("Corp", "ann", "Ann")


def test_deleting_a_directory_keeps_its_users_as_local_users(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot, settings={"default_organization": "acme"})
    sync(store, directory)
    with store.transaction() as session:
        dirs.delete_directory(session, session.get_one(Directory, directory))
    remaining = users(store)
    assert len(remaining) == 5
    assert all(u["directory"] is None and u["memberships"] == [] and u["groups"] == [] for u in remaining.values())
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 5


def test_ten_thousand_users_sync_and_an_unchanged_rerun_reports_zero_changes(
    sqlite_store: Store, snapshot: Snapshot
) -> None:
    for i in range(10_000):
        snapshot.users.append(
            {
                "id": f"u{i}",
                "email": f"user{i}@example.com",
                "given_name": f"G{i}",
                "department": ("R&D", "Sales", "Ops")[i % 3],
            }
        )
    for j in range(200):
        snapshot.group(f"g{j}", f"Group {j}", [f"u{i}" for i in range(j, 10_000, 200)] + [f"g{j + 1}"] * (j % 10 == 0))
    directory = connect(
        sqlite_store,
        snapshot,
        settings={"default_organization": "acme", "attribute_mapping": {"department": "department"}},
    )
    first = sync(sqlite_store, directory)
    assert first["counts"]["users_created"] == 10_000 and first["counts"]["groups_created"] == 200
    second = sync(sqlite_store, directory)
    assert second["status"] == "succeeded"
    assert second["changes"] == []
    assert second["counts"]["users_unchanged"] == 10_000


def test_a_reused_address_waits_until_the_former_holder_is_deleted(store: Store, snapshot: Snapshot) -> None:
    company(snapshot)
    directory = connect(store, snapshot)
    sync(store, directory)
    snapshot.remove("eve")
    snapshot.write()
    sync(store, directory)
    snapshot.user("eve2", "eve@example.com")  # a new hire gets the departed colleague's address
    snapshot.write()
    refused = sync(store, directory)
    assert refused["counts"]["users_created"] == 0
    assert "belongs to another user of this directory (external id eve)" in refused["errors"][0]["message"]
    with store.transaction() as session:
        identity.delete_user(session, identity.get_user(session, "eve@example.com"))
    created = sync(store, directory)
    assert created["counts"]["users_created"] == 1
    assert users(store)["eve@example.com"]["external_id"] == "eve2"


def test_only_deactivated_users_can_be_deleted(store: Store) -> None:
    with store.transaction() as session:
        user = identity.create_user(session, "local@example.com")
        with pytest.raises(ConflictError, match="only deactivated users can be deleted"):
            identity.delete_user(session, user)


def test_a_write_committed_while_a_run_plans_on_sqlite_makes_it_plan_again(
    sqlite_store: Store, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite plans without the write lock; a commit in between must not be overwritten by a stale plan."""
    from accessiq.sync import engine

    store = sqlite_store
    company(snapshot)
    directory = connect(store, snapshot)
    planned = []

    def plan_while_an_administrator_adds_ann(*args: Any) -> Any:
        planned.append(True)
        if len(planned) == 1:
            with store.transaction() as session:  # another connection commits a local ann meanwhile
                identity.create_user(session, "ann@example.com", given_name="Local")
        return engine_plan_sync(*args)

    engine_plan_sync = engine.plan_sync
    monkeypatch.setattr(engine, "plan_sync", plan_while_an_administrator_adds_ann)

    result = sync(store, directory)

    assert result["status"] == "succeeded", result["message"]
    assert len(planned) == 2, "the stale plan was made again"
    with store.transaction() as session:
        ann = session.scalars(select(User).where(User.email_key == "ann@example.com")).one()
        assert ann.directory_id == directory, "the local ann was linked to the directory, not duplicated"
    assert len(users(store)) == 5
