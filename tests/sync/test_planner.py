"""Table-driven tests of the pure planner: one or more cases for every rule of SPEC §3 and §4."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accessiq.sync.planner import Plan, StoredGroup, _in_order, plan_sync

from .planner_kit import (
    DIRECTORY,
    ORG_IDS,
    ROLE_IDS,
    context,
    group,
    rule,
    source,
    state,
    steps,
    stored,
    user,
)

DEFAULT = f"directory-default:{DIRECTORY}"
ACME, ENG = ORG_IDS["acme"], ORG_IDS["acme-eng"]
MEMBER, ADMIN, VIEWER = ROLE_IDS["member"], ROLE_IDS["admin"], ROLE_IDS["viewer"]
USERS = ["ann", "bob", "cy", "dee", "ed"]


# Each case: (source, store state, context, expected (object, action, external id) steps in order).
CASES = {
    "new users are created in id order": (
        source(user("b"), user("a")),
        state(),
        context(),
        [("user", "create", "a"), ("user", "create", "b")],
    ),
    "unchanged data plans nothing": (
        source(user("a")),
        state(stored("a", 1)),
        context(),
        [],
    ),
    "a changed attribute is an update": (
        source(user("a", given_name="Alicia")),
        state(stored("a", 1)),
        context(),
        [("user", "update", "a")],
    ),
    "a user removed from the source is deactivated": (
        source(user("a")),
        state(stored("a", 1), stored("b", 2)),
        context(),
        [("user", "deactivate", "b")],
    ),
    "deactivation ignore leaves a removed user alone": (
        source(user("a")),
        state(stored("a", 1), stored("b", 2)),
        context(deactivation="ignore"),
        [],
    ),
    "a user disabled in the source is deactivated": (
        source(user("a", active=False)),
        state(stored("a", 1)),
        context(),
        [("user", "deactivate", "a")],
    ),
    "a disabled user that never synced is not created": (
        source(user("a", active=False)),
        state(),
        context(),
        [],
    ),
    "a user sync deactivated comes back active and is reactivated": (
        source(user("a")),
        state(stored("a", 1, status="deactivated", deactivated_by="sync")),
        context(),
        [("user", "reactivate", "a")],
    ),
    "a user an admin deactivated stays deactivated": (
        source(user("a")),
        state(stored("a", 1, status="deactivated", deactivated_by="admin")),
        context(),
        [],
    ),
    "an already deactivated removed user plans nothing": (
        source(),
        state(stored("a", 1, status="deactivated", deactivated_by="sync")),
        context(),
        [],
    ),
    "an unlinked local user with the same email is linked (by_email)": (
        source(user("a", "Ann@Example.com")),
        state(stored(None, 7, "ann@example.com", directory_id=None)),
        context(link_existing_users="by_email"),
        [("user", "link", "a")],
    ),
    "a partial read never deactivates": (
        source(user("a"), complete=False),
        state(stored("a", 1), stored("b", 2)),
        context(),
        [],
    ),
    "a rejected record leaves its user untouched": (
        source(user("a"), rejected=[("user", "b", "bad record")]),
        state(stored("a", 1), stored("b", 2)),
        context(),
        [],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_planner_cases(case: str) -> None:
    snapshot, current, ctx, expected = CASES[case]
    assert steps(plan_sync(snapshot, current, ctx)) == expected


def test_update_records_each_attribute_before_and_after() -> None:
    plan = plan_sync(
        source(user("a", given_name="Alicia", department="R&D")),
        state(stored("a", 1, attributes={"department": "Ops", "old": 1})),
        context(attribute_mapping={"department": "department"}),
    )
    [op] = plan.operations
    assert op.detail["changes"] == {
        "given_name": ["A", "Alicia"],
        "attributes.department": ["Ops", "R&D"],
        "attributes.old": [1, None],
    }
    assert op.describe().startswith("update user a@example.com: given_name 'A' -> 'Alicia'")


def test_removed_user_with_ignore_is_logged_as_retained() -> None:
    plan = plan_sync(source(), state(stored("b", 2)), context(deactivation="ignore"))
    assert plan.retained == ["b"]
    assert plan.counts["users_retained"] == 1


def test_duplicate_emails_are_errors_on_both_and_neither_changes() -> None:
    plan = plan_sync(
        source(user("a", "same@example.com"), user("b", "SAME@example.com"), user("c")),
        state(stored("a", 1, "a@example.com")),
        context(),
    )
    assert steps(plan) == [("user", "create", "c")]
    assert {(e.external_id) for e in plan.errors} == {"a", "b"}
    assert all("also used by" in e.message for e in plan.errors)
    assert plan.counts["user_errors"] == 2


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("not-an-email", "is not a valid address"),
        ("", "no email"),
        ("a b@example.com", "is not a valid address"),
    ],
)
def test_invalid_email_is_an_error_on_that_user(email: str, problem: str) -> None:
    plan = plan_sync(source(user("a", email), user("b")), state(), context())
    assert steps(plan) == [("user", "create", "b")]
    [error] = plan.errors
    assert (error.object, error.external_id) == ("user", "a") and problem in error.message


def test_link_existing_users_never_refuses_to_link() -> None:
    plan = plan_sync(
        source(user("a", "ann@example.com")),
        state(stored(None, 7, "ann@example.com", directory_id=None)),
        context(link_existing_users="never"),
    )
    assert plan.operations == []
    assert "link_existing_users" in plan.errors[0].message


def test_an_email_linked_to_another_directory_is_never_taken_over() -> None:
    plan = plan_sync(
        source(user("a", "ann@example.com")),
        state(stored("x", 7, "ann@example.com", directory_id=2)),
        replace(context(link_existing_users="by_email"), directories={2: "Contoso HR"}),
    )
    assert plan.operations == []
    # The other directory is named as the administrator knows it, never by a row id.
    assert plan.errors[0].message == (
        "email ann@example.com belongs to a user of directory 'Contoso HR'; it is never taken over"
    )


def test_an_email_change_onto_another_users_email_is_an_error() -> None:
    plan = plan_sync(
        source(user("a", "b@example.com"), user("b")),
        state(stored("a", 1), stored("b", 2)),
        context(),
    )
    assert plan.operations == []
    assert plan.errors[0].external_id == "a"


def test_a_failing_template_is_an_error_on_that_user_only() -> None:
    plan = plan_sync(
        source(user("a", score=0), user("b", score=2)),
        state(),
        context(attribute_mapping={"ratio": "{{ 10 // score }}"}),
    )
    assert steps(plan) == [("user", "create", "b")]
    assert plan.errors[0].external_id == "a" and "ratio" in plan.errors[0].message


def test_templates_and_paths_map_nested_fields() -> None:
    plan = plan_sync(
        source(user("a", "A@Example.COM", profile={"dept": "R&D"}, upn="ANN@corp")),
        state(),
        context(
            attribute_mapping={
                "email": "{{ (mail or email) | lower }}",
                "username": "{{ upn | lower }}",
                "department": "profile.dept",
                "display_name": "{{ given_name }} from {{ profile.dept }}",
            }
        ),
    )
    detail = plan.operations[0].detail
    assert detail["email"] == "a@example.com"
    assert detail["username"] == "ann@corp"
    assert detail["display_name"] == "A from R&D"
    assert detail["attributes"] == {"department": "R&D"}


def test_a_null_mapping_removes_a_provider_default() -> None:
    plan = plan_sync(source(user("a")), state(), context(attribute_mapping={"username": None}))
    assert plan.operations[0].detail["username"] is None


# -- scope ------------------------------------------------------------------------------------


def test_user_filter_groups_include_nested_members_and_tolerate_cycles() -> None:
    snapshot = source(
        user("a"),
        user("b"),
        user("c"),
        group("eng", "Engineering", groups=("platform",)),
        group("platform", "Platform", users=("a",), groups=("eng",)),  # a cycle
        group("sales", "Sales", users=("c",)),
    )
    plan = plan_sync(snapshot, state(), context(user_filter={"groups": ["engineering"]}))
    assert [op.external_id for op in plan.of("user", "create")] == ["a"]
    assert plan.pins == {"engineering": "eng"}


def test_a_user_leaving_the_filter_scope_is_deactivated_with_the_reason() -> None:
    snapshot = source(user("a"), user("b"), group("eng", "Engineering", users=("a",)))
    plan = plan_sync(snapshot, state(stored("a", 1), stored("b", 2)), context(user_filter={"groups": ["eng"]}))
    [op] = plan.of("user", "deactivate")
    assert op.external_id == "b" and op.detail["reason"] == "out of the user filter's scope"


def test_an_unresolvable_filter_group_never_deactivates_for_scope() -> None:
    snapshot = source(user("a"), user("b"), group("eng", "Engineering", users=("a",)))
    plan = plan_sync(snapshot, state(stored("a", 1), stored("b", 2)), context(user_filter={"groups": ["eng", "Nope"]}))
    assert plan.of("user", "deactivate") == []
    assert plan.errors[0].object == "user_filter" and "'Nope'" in plan.errors[0].message


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (["ou=Sales,dc=example,dc=com"], ["s1", "s2"]),
        (["OU=Sales, DC=example, DC=com"], ["s1", "s2"]),
        (["/Engineering"], ["g1"]),
        (["/"], ["g1", "g2"]),
    ],
)
def test_user_filter_org_units_include_children(units: list[str], expected: list[str]) -> None:
    snapshot = source(
        user("s1", org_unit="uid=s1,ou=Sales,dc=example,dc=com"),
        user("s2", org_unit="uid=s2,ou=EMEA,ou=Sales,dc=example,dc=com"),
        user("x", org_unit="uid=x,ou=Salesforce,dc=example,dc=com"),
        user("g1", org_unit="/Engineering/Platform"),
        user("g2", org_unit="/EngineeringOps"),
    )
    plan = plan_sync(snapshot, state(), context(user_filter={"org_units": units}))
    created = [op.external_id for op in plan.of("user", "create")]
    assert created == expected


def test_user_filter_condition_on_source_fields() -> None:
    snapshot = source(user("a", department="Sales"), user("b", department="R&D"), user("c"))
    plan = plan_sync(snapshot, state(), context(user_filter={"condition": "department == 'Sales'"}))
    assert [op.external_id for op in plan.of("user", "create")] == ["a"]


def test_all_filter_criteria_must_hold() -> None:
    snapshot = source(
        user("a", department="Sales", org_unit="/Sales"),
        user("b", department="Sales", org_unit="/Ops"),
        group("all", "All", users=("a", "b")),
    )
    plan = plan_sync(
        snapshot,
        state(),
        context(user_filter={"groups": ["All"], "org_units": ["/Sales"], "condition": "department == 'Sales'"}),
    )
    assert [op.external_id for op in plan.of("user", "create")] == ["a"]


# -- groups and memberships -------------------------------------------------------------------


def test_groups_are_created_updated_and_deleted_with_their_memberships() -> None:
    snapshot = source(user("a"), user("b"), group("g1", "One", users=("a", "b")), group("g2", "Two renamed"))
    current = state(
        stored("a", 1),
        stored("b", 2),
        groups=(
            StoredGroup(1, "g1", "One", None),
            StoredGroup(2, "g2", "Two", None),
            StoredGroup(3, "g3", "Gone", None),
        ),
        members={("g1", "a"), ("g3", "a")},
    )
    plan = plan_sync(snapshot, current, context())
    assert steps(plan) == [
        ("group", "update", "g2"),
        ("group_membership", "add", "b"),
        ("group", "delete", "g3"),
    ]
    assert plan.counts["groups_processed"] == 2


def test_a_deactivated_user_loses_sync_memberships_and_regains_them_on_return() -> None:
    snapshot = source(user("a", active=False), group("g1", "One", users=("a",)))
    current = state(
        stored("a", 1),
        groups=(StoredGroup(1, "g1", "One", None),),
        members={("g1", "a")},
        org_memberships={(ACME, "a", DEFAULT): MEMBER},
    )
    plan = plan_sync(snapshot, current, context(default_organization="acme"))
    assert steps(plan) == [
        ("group_membership", "remove", "a"),
        ("org_membership", "revoke", "a"),
        ("user", "deactivate", "a"),
    ]


def test_default_organization_and_role_for_every_synced_user() -> None:
    plan = plan_sync(source(user("a"), user("b")), state(), context(default_organization="acme", default_role="viewer"))
    grants = plan.of("org_membership", "grant")
    assert [(op.detail["organization"], op.detail["role"], op.detail["origin"]) for op in grants] == [
        ("acme", "viewer", DEFAULT),
        ("acme", "viewer", DEFAULT),
    ]


def test_changing_the_default_role_changes_the_owned_memberships() -> None:
    plan = plan_sync(
        source(user("a")),
        state(stored("a", 1), org_memberships={(ACME, "a", DEFAULT): MEMBER}),
        context(default_organization="acme", default_role="viewer"),
    )
    [op] = plan.operations
    assert (op.action, op.detail["role_before"], op.detail["role"]) == ("change", "member", "viewer")


def test_group_mappings_flatten_nested_groups_and_keep_every_role() -> None:
    snapshot = source(
        user("a"),
        user("b"),
        group("eng", "Engineering", users=("b",), groups=("platform",)),
        group("platform", "Platform", users=("a",)),
    )
    plan = plan_sync(
        snapshot,
        state(),
        context(rule(1, "Engineering", "acme-eng", "member"), rule(2, "Platform", "acme-eng", "admin")),
    )
    grants = sorted((op.external_id, op.detail["role"]) for op in plan.of("org_membership", "grant"))
    # a is in Platform (admin) and, through nesting, in Engineering (member): both memberships
    # exist and the effective role is the highest; b only through Engineering.
    assert grants == [("a", "admin"), ("a", "member"), ("b", "member")]


def test_manual_memberships_are_never_touched() -> None:
    # The store state holds only owned origins; a manual membership is not even visible to the planner,
    # so the plan cannot revoke it. Owned ones not wanted any more are revoked.
    plan = plan_sync(
        source(user("a")),
        state(stored("a", 1), org_memberships={(ENG, "a", "group-mapping:9"): ADMIN}),
        context(rule(9, "Engineering", "acme-eng", "admin", removed=True)),
    )
    assert steps(plan) == [("org_membership", "revoke", "a")]


def test_an_unresolvable_mapping_is_a_run_error_and_keeps_its_memberships() -> None:
    plan = plan_sync(
        source(user("a"), group("eng", "Engineering", users=("a",))),
        state(stored("a", 1), org_memberships={(ENG, "a", "group-mapping:1"): ADMIN}),
        context(rule(1, "Engneering", "acme-eng", "admin"), rule(2, "Engineering", "acme-it", "member")),
    )
    # Mapping 1 cannot resolve: its admin membership stays; mapping 2 still grants.
    assert [(op.action, op.detail["origin"]) for op in plan.operations if op.object == "org_membership"] == [
        ("grant", "group-mapping:2")
    ]
    [error] = plan.errors
    assert error.object == "group_mapping" and "'Engneering'" in error.message and "kept" in error.message


def test_an_ambiguous_group_reference_names_the_candidates() -> None:
    plan = plan_sync(
        source(user("a"), group("g1", "Sales"), group("g2", "sales")),
        state(),
        context(rule(1, "Sales", "acme", "member")),
    )
    assert "2 groups match 'Sales' (g1, g2)" in plan.errors[0].message


def test_a_pinned_mapping_survives_a_rename_in_the_source() -> None:
    snapshot = source(user("a"), group("eng", "R&D (was Engineering)", users=("a",)))
    plan = plan_sync(
        snapshot,
        state(stored("a", 1)),
        context(rule(1, "Engineering", "acme-eng", "admin"), pins={"Engineering": "eng"}),
    )
    assert steps(plan) == [
        ("group", "create", "eng"),
        ("group_membership", "add", "a"),
        ("org_membership", "grant", "a"),
    ]
    assert plan.pins == {}


def test_a_pinned_group_deleted_in_the_source_revokes_its_memberships() -> None:
    plan = plan_sync(
        source(user("a")),
        state(stored("a", 1), org_memberships={(ENG, "a", "group-mapping:1"): ADMIN}),
        context(rule(1, "Engineering", "acme-eng", "admin"), pins={"Engineering": "eng"}),
    )
    assert steps(plan) == [("org_membership", "revoke", "a")]
    assert "no longer exists" in plan.errors[0].message


# -- determinism ------------------------------------------------------------------------------


def test_the_plan_does_not_depend_on_source_order() -> None:
    users = [user(f"u{i}") for i in range(30)]
    groups = [group(f"g{i}", users=tuple(f"u{j}" for j in range(i, 30, 3))) for i in range(5)]
    ctx = context(rule(1, "g1", "acme", "admin"), default_organization="acme")
    first = plan_sync(source(*users, *groups), state(stored("gone", 99)), ctx)
    shuffled = users + groups
    random.Random(3).shuffle(shuffled)
    second = plan_sync(source(*shuffled), state(stored("gone", 99)), ctx)
    assert first.to_json() == second.to_json()


def test_a_plan_round_trips_through_json() -> None:
    from accessiq.sync.planner import Plan

    plan = plan_sync(source(user("a"), group("g", users=("a",))), state(stored("b", 2)), context())
    assert Plan.from_json(plan.to_json()) == plan


@given(
    st.dictionaries(
        st.sampled_from([f"g{i}" for i in range(8)]),
        st.tuples(st.sampled_from(["Eng", "Ops", "Eng Ops", "E"]), st.sets(st.sampled_from(USERS), max_size=6)),
        max_size=8,
    ),
    st.sets(st.tuples(st.sampled_from([f"g{i}" for i in range(8)]), st.sampled_from(USERS)), max_size=20),
)
def test_memberships_are_planned_in_the_order_every_step_is_sorted_by(
    groups: dict[str, tuple[str, set[str]]], members: set[tuple[str, str]]
) -> None:
    """Membership changes are made in apply order rather than sorted: the same order as the sort."""
    snapshot = source(
        *(user(u, f"{u[::-1]}@example.com") for u in USERS),
        *(group(g, name, users=tuple(sorted(users))) for g, (name, users) in groups.items()),
    )
    current = state(
        *(stored(u, n, f"{u[::-1]}@example.com") for n, u in enumerate(USERS, 1)),
        groups=tuple(StoredGroup(n, g, "Eng", None) for n, g in enumerate(sorted({g for g, _ in members}), 1)),
        members=members,
    )
    plan = plan_sync(snapshot, current, context())
    assert plan.operations == _in_order(list(reversed(plan.operations)))


def test_a_membership_change_reads_and_stores_as_its_dict() -> None:
    plan = plan_sync(source(user("ann"), group("g1", "Eng", users=("ann",))), state(), context())
    (op,) = plan.of("group_membership", "add")
    detail = {"key": ["g1", "ann"], "group": "Eng", "user": "ann@example.com"}
    assert op.detail == detail and dict(op.detail) == detail and len(op.detail) == 3
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))).operations == plan.operations
