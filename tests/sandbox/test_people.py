"""The seeded people generator: deterministic, realistic enough, nested without cycles."""

from __future__ import annotations

from collections import Counter

import pytest

from accessiq.sandbox.people import DEPARTMENTS, PeopleFactory, generate_population


def test_the_same_seed_gives_the_same_population() -> None:
    assert generate_population(300, 40, seed=9) == generate_population(300, 40, seed=9)
    assert generate_population(300, 40, seed=9).people != generate_population(300, 40, seed=10).people


def test_identifiers_logins_and_employee_numbers_are_unique() -> None:
    population = generate_population(2000, 100, seed=1)
    people = population.people
    assert len({p.id for p in people}) == len({p.username for p in people}) == len(people)
    assert len({p.employee_id for p in people}) == len(people)
    assert len({g.id for g in population.groups} | {p.id for p in people}) == len(people) + 100
    assert all(p.login.isascii() and p.login.lower() == f"{p.username}@{p.domain}" for p in people)


def test_the_population_has_the_awkward_cases_a_sync_must_handle() -> None:
    people = generate_population(2000, 10, seed=2).people
    assert 0 < sum(not p.active for p in people) < 200
    assert 0 < sum(p.email is None for p in people) < 100
    assert any(p.login != p.login.lower() for p in people), "some logins keep capitals"
    assert any(not p.display_name.isascii() for p in people), "some names have diacritics"
    assert any("'" in p.surname for p in people)


def test_groups_nest_all_staff_departments_and_teams_without_cycles() -> None:
    population = generate_population(500, 120, seed=3)
    by_id = {g.id: g for g in population.groups}
    names = {g.name: g for g in population.groups}
    assert len(population.groups) == 120
    assert {by_id[i].name for i in names["All Staff"].member_groups} == set(DEPARTMENTS)
    assert {by_id[i].name for i in names["Engineering"].member_groups} == set(DEPARTMENTS["Engineering"])

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for child in by_id[start].member_groups:
            if child == target or (child not in seen and reaches(child, target, seen | {child})):
                return True
        return False

    assert not any(reaches(g.id, g.id, set()) for g in population.groups)
    for person in population.people:
        team = names[person.team]
        assert person.id in team.member_users
        assert person.id in names[f"Office - {person.office}"].member_users


@pytest.mark.parametrize(("users", "groups"), [(0, 0), (5, 1), (5, 3), (1, 60)])
def test_small_and_odd_sizes_work(users: int, groups: int) -> None:
    population = generate_population(users, groups, seed=4)
    assert len(population.people) == users and len(population.groups) == groups
    for group in population.groups:
        assert set(group.member_users) <= {p.id for p in population.people}


def test_people_are_spread_over_departments() -> None:
    departments = Counter(p.department for p in generate_population(3000, 0, seed=5).people)
    assert set(departments) == set(DEPARTMENTS)
    assert departments.most_common(1)[0][0] == "Engineering"


def test_a_factory_keeps_making_unique_people() -> None:
    factory = PeopleFactory(seed=1)
    people = [factory.person(department="Legal") for _ in range(300)]
    assert len({p.username for p in people}) == 300
    assert {p.department for p in people} == {"Legal"}
