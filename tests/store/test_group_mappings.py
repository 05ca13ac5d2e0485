"""Group mappings as the store keeps them: applying a document is idempotent, one live row per
(group, organization), and stores that hold copies from earlier versions are folded on upgrade."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from accessiq.errors import ConfigurationError
from accessiq.services import directories as dirs
from accessiq.services import identity
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store, alembic_config
from accessiq.store.tables import GroupMapping, Organization, Role
from accessiq.sync.document import validate_document
from accessiq.sync.settings import mapping_key

GROUPS = ("Engineering", "engineering", "Sales", "g-eng", "Platform")
ORGS = ("acme", "acme-eng")
ROLES = ("owner", "admin", "member", "viewer")
_names = itertools.count()

mapping_specs = st.lists(
    st.fixed_dictionaries(
        {"source_group": st.sampled_from(GROUPS), "organization": st.sampled_from(ORGS), "role": st.sampled_from(ROLES)}
    ),
    max_size=6,
)


def _unique(mappings: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first row of each (group, organization) pair: a valid document's mappings."""
    seen: set[Any] = set()
    kept = []
    for row in mappings:
        key = mapping_key(row["source_group"], row["organization"])
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


documents = st.fixed_dictionaries(
    {
        "provider": st.just("file"),
        "connection": st.just({"path": "/srv/acme.json"}),
        "settings": st.fixed_dictionaries(
            {},
            optional={
                "frequency": st.sampled_from(["15m", "1h", "0 * * * *"]),
                "default_organization": st.sampled_from(ORGS),
                "default_role": st.sampled_from(ROLES),
                "user_filter": st.fixed_dictionaries({"groups": st.lists(st.sampled_from(GROUPS), max_size=2)}),
                "attribute_mapping": st.dictionaries(
                    st.sampled_from(["department", "title", "display_name"]),
                    st.sampled_from(["department", "location.city", "{{ given_name }} {{ family_name }}"]) | st.none(),
                    max_size=2,
                ),
            },
        ),
        "group_mappings": mapping_specs,
    }
)


@pytest.fixture
def orgs(store: Store) -> Store:
    with store.transaction() as session:
        for slug in ORGS:
            identity.create_organization(session, slug)
    return store


def _apply(store: Store, document: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Apply through the service every face uses; return the exported document and every mapping row."""
    with store.transaction() as session:
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        exported = dirs.export_document(session, directory)
        rows = session.execute(
            select(
                GroupMapping.id,
                GroupMapping.source_group,
                GroupMapping.organization_id,
                GroupMapping.role_id,
                GroupMapping.position,
                GroupMapping.removed,
            )
            .where(GroupMapping.directory_id == directory.id)
            .order_by(GroupMapping.id)
        ).all()
    return exported, [tuple(row) for row in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=documents, second=documents.map(lambda d: {**d, "group_mappings": _unique(d["group_mappings"])}))
def test_applying_a_document_twice_equals_applying_it_once(orgs: Store, first: Any, second: Any) -> None:
    """Any document is either refused (one pair twice) or applies so that applying it again is a no-op."""
    valid = _unique(first["group_mappings"]) == first["group_mappings"]
    # From a fresh directory and from one an earlier document shaped.
    for history in ([], [second]):
        name = f"Directory {next(_names)}"
        before = [_apply(orgs, {**earlier, "name": name}) for earlier in history]
        document = {**first, "name": name}
        if not valid:
            with pytest.raises(ConfigurationError, match="twice"):
                _apply(orgs, document)
            assert [_apply(orgs, {**earlier, "name": name}) for earlier in history] == before
            continue
        once = _apply(orgs, document)
        twice = _apply(orgs, document)
        assert twice == once
        assert once[0]["group_mappings"] == document["group_mappings"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mappings=mapping_specs.filter(lambda rows: len(_unique(rows)) < len(rows)))
def test_a_document_with_one_pair_twice_is_refused(mappings: list[dict[str, str]]) -> None:
    with pytest.raises(ConfigurationError) as refused:
        validate_document({"name": "Acme", "provider": "file", "group_mappings": mappings})
    index = next(
        i
        for i, row in enumerate(mappings)
        if mapping_key(row["source_group"], row["organization"])
        in {mapping_key(r["source_group"], r["organization"]) for r in mappings[:i]}
    )
    assert refused.value.field == f"group_mappings[{index}]"
    row = mappings[index]
    assert f"group {row['source_group']} is mapped to organization {row['organization']} twice" in str(refused.value)


def test_upgrading_folds_copies_into_the_highest_role(orgs: Store) -> None:
    document = {
        "name": "Acme HR",
        "provider": "file",
        "connection": {"path": "/srv/acme.json"},
        "group_mappings": [{"source_group": "Sales", "organization": "acme", "role": "member"}],
    }
    _apply(orgs, document)
    with orgs.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    # What earlier versions left behind: one pair stored three times (once as a reference in
    # another case), and a second pair once.
    with orgs.transaction() as session:
        directory = dirs.get_directory(session, "Acme HR")
        acme = session.scalar(select(Organization.id).where(Organization.slug == "acme"))
        role = dict(session.execute(select(Role.name, Role.id)).all())
        session.add_all(
            [
                GroupMapping(
                    directory_id=directory.id,
                    source_group=group,
                    organization_id=acme,
                    role_id=role[name],
                    position=1,
                )
                for group, name in (("Engineering", "viewer"), ("engineering", "owner"), ("Engineering", "viewer"))
            ]
        )
    orgs.migrate()

    with orgs.transaction() as session:
        exported = dirs.export_document(session, dirs.get_directory(session, "Acme HR"))
    assert exported["group_mappings"] == [
        {"source_group": "Sales", "organization": "acme", "role": "member"},
        {"source_group": "engineering", "organization": "acme", "role": "owner"},
    ]
    # The folded document saves as it is, and saving it again changes nothing.
    assert _apply(orgs, exported) == _apply(orgs, exported)
