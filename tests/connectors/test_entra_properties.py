"""Incremental sync converges: a store that followed random Graph changes delta by delta ends up
where a fresh full sync of the final tenant puts a new store (SQLite, the Graph sandbox)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accessiq.config import Settings
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store, open_store
from accessiq.store.tables import Directory
from accessiq.sync.document import validate_document

from ..conftest import TEST_KEY

# One change to the tenant: (kind, user index, group index, value index).
change = st.tuples(
    st.sampled_from(["rename", "department", "disable", "enable", "delete", "add", "join", "leave", "nest"]),
    st.integers(0, 29),
    st.integers(0, 5),
    st.integers(0, 3),
)


def _apply(sandbox: EntraSandbox, kind: str, u: int, g: int, v: int) -> None:
    users = sorted(sandbox.snapshot()["users"])
    groups = sorted(sandbox.snapshot()["groups"])
    if not users or not groups:
        return
    user, group = users[u % len(users)], groups[g % len(groups)]
    if kind == "rename":
        sandbox.update_user(user, {"displayName": f"Renamed {v}"})
    elif kind == "department":
        sandbox.update_user(user, {"department": ("R&D", "Sales", "Ops", None)[v]})
    elif kind == "disable":
        sandbox.disable_user(user)
    elif kind == "enable":
        sandbox.enable_user(user)
    elif kind == "delete":
        sandbox.delete_user(user, permanent=v % 2 == 0)
    elif kind == "add":
        hired = sandbox.add_user({"displayName": f"Hire {v}"})
        sandbox.change_members(group, add=[hired["id"]])
    elif kind == "join":
        sandbox.change_members(group, add=[user])
    elif kind == "leave":
        if user in sandbox.snapshot()["groups"][group]["users"]:
            sandbox.change_members(group, remove=[user])
    elif kind == "nest":
        other = groups[(g + 1 + v) % len(groups)]
        if other != group:
            sandbox.change_members(group, add=[other])


class Tenant:
    """A fresh store connected to the sandbox, synced through the engine."""

    def __init__(self, base: Path, url: str, sandbox: EntraSandbox) -> None:
        self.store: Store = open_store(Settings(data_dir=base, secret_key=TEST_KEY))
        with self.store.transaction() as session:
            identity.create_organization(session, "contoso")
            document = {
                "name": "Contoso",
                "provider": "entra",
                "connection": {
                    "tenant_id": sandbox.tenant_id,
                    "client_id": sandbox.client_id,
                    "client_secret": sandbox.client_secret,
                    "authority_url": url,
                    "graph_url": url,
                },
                "settings": {
                    "default_organization": "contoso",
                    "attribute_mapping": {"department": "department"},
                    "safety": {"max_deactivations": 1000, "max_deactivation_percent": 100},
                },
                "group_mappings": [
                    {
                        "source_group": sorted(sandbox.snapshot()["groups"])[0],
                        "organization": "contoso",
                        "role": "admin",
                    }
                ],
            }
            directory, _ = dirs.apply_document(
                session, self.store.secrets, validate_document(document), policy=InputPolicy.operator()
            )
            self.directory_id = directory.id

    def sync(self) -> dict[str, Any]:
        with self.store.transaction() as session:
            run_id = runs.request_sync(session, session.get_one(Directory, self.directory_id))[0].id
        runs.run_now(self.store, run_id)
        with self.store.transaction() as session:
            return runs.run_json(session, runs.get_run(session, run_id))

    def view(self) -> dict[str, Any]:
        with self.store.transaction() as session:
            users = identity.users_json(session, identity.list_users(session, status="active"))
            groups = identity.list_groups(session)
        return {
            "users": {
                u["external_id"]: (
                    u["email"],
                    u["display_name"],
                    u["attributes"],
                    u["groups"],
                    sorted((m["organization"], m["role"]) for m in u["memberships"]),
                )
                for u in users
            },
            "groups": sorted((g["external_id"], g["name"], g["members"]) for g in groups),
        }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(change, min_size=1, max_size=6), min_size=1, max_size=3))
def test_incremental_syncs_converge_to_a_fresh_full_sync(batches: list[list[tuple[str, int, int, int]]]) -> None:
    sandbox = EntraSandbox(30, 6, seed=11)
    with (
        SandboxServer(create_app(sandbox)) as server,
        tempfile.TemporaryDirectory() as a,
        tempfile.TemporaryDirectory() as b,
    ):
        followed = Tenant(Path(a), server.url, sandbox)
        assert followed.sync()["mode"] == "full"
        for batch in batches:
            for step in batch:
                _apply(sandbox, *step)
            run = followed.sync()
            assert (run["mode"], run["status"]) == ("incremental", "succeeded"), run
        fresh = Tenant(Path(b), server.url, sandbox)
        assert fresh.sync()["mode"] == "full"
        assert followed.view() == fresh.view()
        followed.store.dispose()
        fresh.store.dispose()
