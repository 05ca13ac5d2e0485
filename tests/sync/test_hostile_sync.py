"""Hostile directory data through the whole pipeline, on SQLite and PostgreSQL: each bad record is
an error on that record, the rest applies, and no address passes for another user's."""

from __future__ import annotations

from typing import Any

from accessiq.services import identity
from accessiq.store.database import Store

from ..conftest import Snapshot
from .test_engine import connect, sync, users

NESTED: Any = "deep"
for _ in range(60):
    NESTED = {"d": NESTED}


def test_bad_records_are_errors_on_themselves_and_the_rest_applies(store: Store, snapshot: Snapshot) -> None:
    for name in ("ann", "bob", "cat"):
        snapshot.user(name)
    hostile = {
        "nul": {"given_name": "Eve\x00lyn"},
        "long": {"display_name": "D" * 401},
        "nan": {"score": float("nan")},
        "nested": {"profile": NESTED},
        "huge": {"blob": "x" * (1024 * 1024 + 10)},
        "state": {"active": "false"},
        "ou": {"org_unit": {"path": "/Sales"}},
        "wide": {"email": "\uff41\uff4e\uff4e@example.com"},
        "cyrillic": {"email": "\u0430nn@example.com"},
        "hidden": {"email": "bob\u200b@example.com"},
        "upper": {"email": "CAT@EXAMPLE.COM"},
        "ctrl": {"family_name": "Doe\nInjected"},
    }
    for ext, fields in hostile.items():
        snapshot.user(ext, **fields)
    snapshot.users.append({"id": "i" * 201, "email": "long-id@example.com"})
    snapshot.group("g-nul", "Bad\x00Group", ["ann"])
    snapshot.group("g-ok", "Good", ["ann", "nul"])
    directory = connect(
        store, snapshot, settings={"attribute_mapping": {"score": "score", "profile": "profile", "blob": "blob"}}
    )

    run = sync(store, directory)

    assert run["status"] == "succeeded_with_errors", run["message"]
    # cat and CAT are one address: both are errors and neither is created.
    assert sorted(users(store)) == ["ann@example.com", "bob@example.com"]
    errors = {(e["object"], e["external_id"]): e["message"] for e in run["errors"]}
    assert set(hostile) <= {ext for obj, ext in errors if obj == "user"}
    assert ("group", "g-nul") in errors
    assert "is also used by source user(s) upper" in errors[("user", "cat")]
    assert "is also used by source user(s) cat" in errors[("user", "upper")]
    assert "holds look-alike characters" in errors[("user", "wide")]
    assert "mixes scripts (CYRILLIC, LATIN)" in errors[("user", "cyrillic")]
    assert "invisible or control characters" in errors[("user", "hidden")]
    assert "control character" in errors[("user", "ctrl")]
    assert [g for g in users(store)["ann@example.com"]["groups"]] == ["Good"]
    again = sync(store, directory)
    assert again["status"] == "succeeded_with_errors" and again["changes"] == []


def test_a_case_variant_of_another_directorys_user_is_an_error_never_a_takeover(
    store: Store, snapshot: Snapshot, tmp_path: Any
) -> None:
    snapshot.user("ann", "ann@example.com")
    first = connect(store, snapshot)
    sync(store, first)
    other = Snapshot(tmp_path / "other.json")
    other.user("intruder", "ANN@Example.COM")
    other.user("lookalike", "\u0430nn@example.com")
    other.write()
    with store.transaction() as session:
        from accessiq.services import directories as dirs
        from accessiq.services.input_policy import InputPolicy
        from accessiq.sync.document import validate_document

        second, _ = dirs.apply_document(
            session,
            store.secrets,
            validate_document({"name": "Other", "provider": "file", "connection": {"path": str(other.path)}}),
            policy=InputPolicy.operator(),
        )
        second_id = second.id
    run = sync(store, second_id)
    assert run["counts"]["users_created"] == 0
    errors = {e["external_id"]: e["message"] for e in run["errors"]}
    assert "belongs to" in errors["intruder"] or "Corp" in errors["intruder"]
    assert "mixes scripts" in errors["lookalike"]
    with store.transaction() as session:
        ann = identity.get_user(session, "ann@example.com")
        assert (ann.directory_id, ann.external_id) == (first, "ann")


def test_deeply_nested_groups_with_a_cycle_sync_and_explain_without_recursion(store: Store, snapshot: Snapshot) -> None:
    depth = 800
    for i in range(depth):
        snapshot.user(f"u{i:04d}")
    for i in range(depth):
        members = [f"u{i:04d}", f"g{i + 1:04d}" if i + 1 < depth else "g0000"]
        snapshot.group(f"g{i:04d}", "Top" if i == 0 else f"Level {i}", members)
    directory = connect(
        store,
        snapshot,
        orgs=("acme", "eng"),
        group_mappings=[{"source_group": "Top", "organization": "eng", "role": "admin"}],
    )
    run = sync(store, directory)
    assert run["status"] == "succeeded", run["message"]
    deepest = users(store)[f"u{depth - 1:04d}@example.com"]
    granted = [m for m in deepest["memberships"] if m["organization"] == "eng"]
    assert granted and granted[0]["role"] == "admin"
