"""Why a user holds a role, on SQLite and PostgreSQL: memberships explained from their origin and the
directory's groups as the last sync saw them (nested groups, cycles, manual grants, removed mappings)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from accessiq.services import access, identity, runs
from accessiq.services import directories as dirs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.store.tables import SourceObject
from accessiq.sync.document import validate_document

from ..conftest import Snapshot


def _company(snapshot: Snapshot) -> None:
    """Engineering ⊃ Platform ⊃ Core ⊃ Engineering (a cycle); ada only in Core, bob in Engineering itself."""
    snapshot.user("ada", "ada@example.com")
    snapshot.user("bob", "bob@example.com")
    snapshot.user("cyd", "cyd@example.com")
    snapshot.group("g-eng", "Engineering", members=["bob", "g-platform"])
    snapshot.group("g-platform", "Platform", members=["g-core"])
    snapshot.group("g-core", "Core", members=["ada", "g-eng"])
    snapshot.group("g-sales", "Sales", members=["cyd"])
    snapshot.write()


def _apply(store: Store, snapshot: Snapshot, mappings: list[dict[str, str]]) -> int:
    with store.transaction() as session:
        directory, _ = dirs.apply_document(
            session,
            store.secrets,
            validate_document(
                {
                    "name": "Contoso",
                    "provider": "file",
                    "connection": {"path": str(snapshot.path)},
                    "settings": {"default_organization": "acme"},
                    "group_mappings": mappings,
                }
            ),
            policy=InputPolicy.operator(),
        )
        return int(directory.id)


def _sync(store: Store, snapshot: Snapshot, mappings: list[dict[str, str]]) -> int:
    directory_id = _apply(store, snapshot, mappings)
    with store.transaction() as session:
        run, _ = runs.request_sync(session, dirs.get_directory(session, directory_id))
        run_id = run.id
    runs.run_now(store, run_id)
    return directory_id


def _memberships(store: Store, email: str) -> dict[str, list[dict[str, Any]]]:
    with store.transaction() as session:
        user = identity.users_json(session, [identity.get_user(session, email)])[0]
    found: dict[str, list[dict[str, Any]]] = {}
    for membership in user["memberships"]:
        found.setdefault(membership["organization"], []).append(membership)
    return found


ENGINEERING = {"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}


def _orgs(store: Store) -> None:
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        identity.create_organization(session, "acme-eng")


def test_a_nested_member_gets_the_shortest_group_path_through_a_cycle(store: Store, snapshot: Snapshot) -> None:
    _orgs(store)
    _company(snapshot)
    directory_id = _sync(store, snapshot, [ENGINEERING])

    (eng,) = _memberships(store, "ada@example.com")["acme-eng"]
    granted = eng["granted_by"]
    assert (eng["role"], eng["effective"], granted["kind"]) == ("admin", True, "group-mapping")
    assert [step["name"] for step in granted["path"]] == ["Engineering", "Platform", "Core"]
    assert all(isinstance(step["id"], int) for step in granted["path"])
    assert granted["summary"] == (
        "mapping Engineering → acme-eng (admin) of directory Contoso, "
        "through Engineering ⊃ Platform ⊃ Core ⊃ ada@example.com"
    )
    assert granted["note"] is None

    (direct,) = _memberships(store, "bob@example.com")["acme-eng"]
    assert [step["name"] for step in direct["granted_by"]["path"]] == ["Engineering"]

    (default,) = _memberships(store, "cyd@example.com")["acme"]
    assert default["granted_by"] == {
        "kind": "directory-default",
        "directory_id": directory_id,
        "directory": "Contoso",
        "mapping": None,
        "path": [],
        "note": None,
        "summary": "default organization of directory Contoso",
    }
    assert "acme-eng" not in _memberships(store, "cyd@example.com")


def test_the_effective_role_is_the_highest_and_a_manual_grant_says_so(store: Store, snapshot: Snapshot) -> None:
    _orgs(store)
    _company(snapshot)
    _sync(store, snapshot, [ENGINEERING, {"source_group": "Core", "organization": "acme-eng", "role": "viewer"}])
    with store.transaction() as session:
        ada, owner = identity.get_user(session, "ada@example.com"), identity.get_role(session, "owner")
        identity.add_member(session, identity.get_organization(session, "acme"), ada, owner)
        effective = identity.users_json(session, [ada])[0]["effective_roles"]
    assert effective == [{"organization": "acme", "role": "owner"}, {"organization": "acme-eng", "role": "admin"}]

    memberships = _memberships(store, "ada@example.com")
    assert [(m["role"], m["effective"], m["granted_by"]["kind"]) for m in memberships["acme"]] == [
        ("owner", True, "manual"),
        ("member", False, "directory-default"),
    ]
    assert memberships["acme"][0]["granted_by"]["summary"].startswith("granted by hand")
    eng = [(m["role"], m["effective"], [s["name"] for s in m["granted_by"]["path"]]) for m in memberships["acme-eng"]]
    assert eng == [("admin", True, ["Engineering", "Platform", "Core"]), ("viewer", False, ["Core"])]


def test_a_removed_mapping_says_the_next_sync_revokes_it(store: Store, snapshot: Snapshot) -> None:
    _orgs(store)
    _company(snapshot)
    _sync(store, snapshot, [ENGINEERING])
    _apply(store, snapshot, [])
    (eng,) = _memberships(store, "ada@example.com")["acme-eng"]
    assert eng["granted_by"]["note"] == "the mapping was removed and the next sync revokes this"


def test_group_and_organization_pages_explain_their_members(store: Store, snapshot: Snapshot) -> None:
    _orgs(store)
    _company(snapshot)
    _sync(store, snapshot, [ENGINEERING])
    with store.transaction() as session:
        platform = next(g for g in identity.list_groups(session) if g["name"] == "Platform")
        detail = access.group_detail(session, identity.get_group(session, platform["id"]))
        members = identity.organization_members(session, identity.get_organization(session, "acme-eng"))
        sources = access.organization_sources(session, identity.get_organization(session, "acme-eng"))
    # Platform holds ada through Core, and bob through Core ⊃ Engineering (the cycle back).
    paths = {m["email"]: [s["name"] for s in m["path"]] for m in detail["members"]}
    assert paths == {"ada@example.com": ["Platform", "Core"], "bob@example.com": ["Platform", "Core", "Engineering"]}
    assert [g["name"] for g in detail["parents"]] == ["Engineering"]
    assert [g["name"] for g in detail["children"]] == ["Core"]
    assert [(g["organization"], g["role"], [s["name"] for s in g["path"]]) for g in detail["grants"]] == [
        ("acme-eng", "admin", ["Engineering", "Platform"])
    ]

    assert [(m["email"], m["role"]) for m in members] == [("ada@example.com", "admin"), ("bob@example.com", "admin")]
    assert all(m["organization"] == "acme-eng" for member in members for m in member["memberships"])
    assert [(s["members"], s["granted_by"]["summary"]) for s in sources] == [
        (2, "mapping Engineering → acme-eng (admin) of directory Contoso")
    ]


def test_activating_a_user_outside_the_user_filter_warns_and_a_local_user_does_not(
    store: Store, snapshot: Snapshot
) -> None:
    _orgs(store)
    _company(snapshot)
    _sync(store, snapshot, [ENGINEERING])
    with store.transaction() as session:
        directory = dirs.get_directory(session, "Contoso")
        directory.settings = {**directory.settings, "user_filter": {"groups": ["Engineering"]}}
        directory.settings["safety"] = {"max_deactivation_percent": 100}
        run, _ = runs.request_sync(session, directory)
        run_id = run.id
    # A changed user filter that deactivates anyone waits for an administrator, who approves it.
    assert runs.run_now(store, run_id).status == "blocked"
    runs.approve(store, run_id)
    with store.transaction() as session:
        cyd = identity.get_user(session, "cyd@example.com")
        assert (cyd.status, cyd.deactivated_by) == ("deactivated", "sync")
        assert identity.reactivation_warning(session, cyd) == (
            "cyd@example.com is outside the users Contoso syncs (its user filter), so the next sync of Contoso "
            "will deactivate them again. To keep them active, change the user filter of Contoso first, "
            "or set the deactivation setting of Contoso to ignore."
        )
        assert identity.reactivation_warning(session, identity.get_user(session, "ada@example.com")) is None
        local = identity.create_user(session, "lee@example.com")
        identity.deactivate_user(session, local)
        assert identity.reactivation_warning(session, local) is None


def test_a_group_the_mirror_does_not_hold_lists_its_direct_members(store: Store, snapshot: Snapshot) -> None:
    _orgs(store)
    _company(snapshot)
    _sync(store, snapshot, [ENGINEERING])
    with store.transaction() as session:
        session.execute(delete(SourceObject).where(SourceObject.kind == "group"))
    with store.transaction() as session:
        engineering = next(g for g in identity.list_groups(session) if g["name"] == "Engineering")
        detail = access.group_detail(session, identity.get_group(session, engineering["id"]))
    assert [(m["email"], m["direct"]) for m in detail["members"]] == [("bob@example.com", True)]
    assert detail["parents"] == [] and detail["grants"] == []
