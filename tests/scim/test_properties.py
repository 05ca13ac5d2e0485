"""Property: any sequence of SCIM writes ends in the same store as a pull of the same final directory.

Hypothesis draws writes (creates, PUTs, PATCHes of `active` and of group members, deletes) over a
few people and groups and keeps the directory they describe. A `file` directory with the same
settings then pulls that final directory into a second store; both stores must hold the same
users (status, names), group memberships and organization roles. A user the SCIM client deleted
is not in the final directory, and one disabled there is never created by a pull: push keeps such
users deactivated, with no access.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from accessiq.config import Settings
from accessiq.server import create_app
from accessiq.services import directories as dirs
from accessiq.services import runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import open_store
from accessiq.sync.document import validate_document

from ..conftest import TEST_KEY
from .conftest import GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA, Scim, issue, make_directory, make_organizations, users

PEOPLE = ("ann", "ben", "cat", "dov")
GROUPS = ("Engineering", "Platform", "Sales")
SAFETY = {"max_deactivations": 1000, "max_deactivation_percent": 100}

person = st.sampled_from(PEOPLE)
group = st.sampled_from(GROUPS)
WRITES = st.one_of(
    st.tuples(st.just("create"), person, st.booleans(), st.sampled_from(["A", "B"])),
    st.tuples(st.just("put"), person, st.booleans(), st.sampled_from(["A", "B", "C"])),
    st.tuples(st.just("active"), person, st.sampled_from([True, False, "False", "True"])),
    st.tuples(st.just("delete"), person),
    st.tuples(st.just("group"), group, st.sets(st.sampled_from(PEOPLE + GROUPS), max_size=4)),
    st.tuples(st.just("add"), group, st.sampled_from(PEOPLE + GROUPS)),
    st.tuples(st.just("remove"), group, st.sampled_from(PEOPLE + GROUPS)),
    st.tuples(st.just("drop-group"), group),
)


@dataclass
class Directory:
    """What the writes say the directory is now: people {key: (active, given)}, groups {name: members}."""

    people: dict[str, tuple[bool, str]] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # key -> SCIM id


def _user(key: str, active: Any, given: str) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": f"{key}@example.com",
        "displayName": f"{given} {key}",
        "name": {"givenName": given, "familyName": key.title()},
        "emails": [{"value": f"{key}@example.com", "type": "work", "primary": True}],
        "active": active,
    }


def _truth(value: Any) -> bool:
    return value if isinstance(value, bool) else value == "True"


def _write(scim: Scim, model: Directory, write: tuple[Any, ...]) -> None:
    kind, target = write[0], write[1]
    uid, gid = model.ids.get(target), model.ids.get(f"group:{target}")
    if kind == "create" and uid is None:
        answer = scim("POST", "/Users", _user(target, write[2], write[3]))
        assert answer.status_code == 201, answer.text
        model.ids[target] = answer.json()["id"]
        model.people[target] = (write[2], write[3])
    elif kind == "put" and uid is not None:
        assert scim("PUT", f"/Users/{uid}", _user(target, write[2], write[3])).status_code == 200
        model.people[target] = (write[2], write[3])
    elif kind == "active" and uid is not None:
        body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "Replace", "path": "active", "value": write[2]}]}
        assert scim("PATCH", f"/Users/{uid}", body).status_code == 200
        model.people[target] = (_truth(write[2]), model.people[target][1])
    elif kind == "delete" and uid is not None:
        assert scim("DELETE", f"/Users/{uid}").status_code == 204
        del model.ids[target], model.people[target]
        for members in model.groups.values():
            members.discard(target)
    elif kind == "group":
        members = {m for m in write[2] if _member_id(model, m) is not None and m != target}
        listed = [{"value": _member_id(model, m)} for m in members]
        body = {"schemas": [GROUP_SCHEMA], "displayName": target, "members": listed}
        if gid is None:
            answer = scim("POST", "/Groups", body)
            assert answer.status_code == 201, answer.text
            model.ids[f"group:{target}"] = answer.json()["id"]
        else:
            assert scim("PUT", f"/Groups/{gid}", body).status_code == 200
        model.groups[target] = members
    elif kind in ("add", "remove") and gid is not None and _member_id(model, write[2]) is not None:
        member = _member_id(model, write[2])
        if write[2] == target:
            return
        operation = (
            {"op": "Add", "path": "members", "value": [{"value": member}]}
            if kind == "add"
            else {"op": "Remove", "path": "members", "value": [{"value": member}]}
        )
        patch = {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
        assert scim("PATCH", f"/Groups/{gid}", patch).status_code == 200
        (model.groups[target].add if kind == "add" else model.groups[target].discard)(write[2])
    elif kind == "drop-group" and gid is not None:
        assert scim("DELETE", f"/Groups/{gid}").status_code == 204
        del model.ids[f"group:{target}"], model.groups[target]
        for members in model.groups.values():
            members.discard(target)


def _member_id(model: Directory, name: str) -> str | None:
    return model.ids.get(name) if name in PEOPLE else model.ids.get(f"group:{name}")


def _pulled(model: Directory, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The store a `file` directory of the final state pulls into."""
    snapshot = tmp_path / "final.json"
    snapshot.write_text(
        json.dumps(
            {
                "users": [
                    {
                        "id": key,
                        "email": f"{key}@example.com",
                        "username": f"{key}@example.com",
                        "given_name": given,
                        "family_name": key.title(),
                        "display_name": f"{given} {key}",
                        "active": active,
                    }
                    for key, (active, given) in model.people.items()
                ],
                "groups": [{"id": name, "name": name, "members": sorted(m)} for name, m in model.groups.items()],
            }
        )
    )
    store = open_store(Settings(data_dir=tmp_path / "pulled", secret_key=TEST_KEY))
    try:
        make_organizations(store)
        with store.transaction() as session:
            document = validate_document(
                {
                    "name": "Pulled",
                    "provider": "file",
                    "connection": {"path": str(snapshot)},
                    "settings": {"default_organization": "acme", "safety": SAFETY},
                    "group_mappings": [{"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}],
                },
            )
            pulled, _ = dirs.apply_document(session, store.secrets, document, policy=InputPolicy.operator())
            with_id = pulled.id
        run = runs.sync_in_foreground(store, with_id)
        assert run.status in ("succeeded", "succeeded_with_errors"), run.message
        return users(store, with_id)
    finally:
        store.dispose()


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(writes=st.lists(WRITES, min_size=1, max_size=14))
def test_scim_writes_end_where_a_pull_of_the_final_directory_ends(
    writes: list[tuple[Any, ...]], tmp_path_factory: Any
) -> None:
    tmp_path = tmp_path_factory.mktemp("scim-property")
    store = open_store(Settings(data_dir=tmp_path / "pushed", secret_key=TEST_KEY))
    try:
        directory = make_directory(store, safety=SAFETY)
        model = Directory()
        with TestClient(create_app(store, settings=Settings(snapshot_dir=tmp_path)), base_url="https://t") as client:
            scim = Scim(client, directory, issue(store, directory))
            for write in writes:
                note(f"{write}")
                _write(scim, model, write)
        pushed = users(store, directory)
    finally:
        store.dispose()
    pulled = _pulled(model, tmp_path)
    # Only history tells these apart: a user the client deleted, or one it disabled, that a pull of
    # the final directory never creates. Push keeps them deactivated, with no access anywhere.
    inactive = {f"{key}@example.com" for key in PEOPLE if not model.people.get(key, (False, ""))[0]}
    gone = (pushed.keys() - pulled.keys()) & inactive
    assert {email: pushed[email] for email in pushed.keys() - gone} == pulled
    for email in gone:
        assert pushed[email]["status"] == "deactivated" and pushed[email]["orgs"] == {}
