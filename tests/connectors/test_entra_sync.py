"""End to end: a directory document pointing at the Graph sandbox, synced by the real engine (SQLite).

The issue's acceptance: a full sync, then a second sync after ten changes that
transfers and applies only those, and each error case ending as a failed run
with a message an admin can act on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from accessiq.services import directories as dirs
from accessiq.services import identity
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import Store
from accessiq.store.tables import Directory
from accessiq.sync.document import validate_document

from ..conftest import statements
from ..runs_kit import sync
from .graph_kit import GraphKit, fresh_kit, graph_server


@pytest.fixture
def graph() -> Iterator[GraphKit]:
    """A Graph sandbox served for this test alone: what a run transfers is counted exactly, with no
    earlier test's server state or clients in the count."""
    with graph_server() as server, fresh_kit(server) as kit:
        yield kit


def connect(store: Store, graph: GraphKit, **connection: Any) -> int:
    with store.transaction() as session:
        identity.create_organization(session, "acme")
        document = {
            "name": "Contoso",
            "provider": "entra",
            "connection": {
                "tenant_id": graph.sandbox.tenant_domain,
                "client_id": graph.sandbox.client_id,
                "client_secret": graph.sandbox.client_secret,
                "authority_url": graph.url,
                "graph_url": graph.url,
                **connection,
            },
            "settings": {"default_organization": "acme", "attribute_mapping": {"department": "department"}},
        }
        directory, _ = dirs.apply_document(
            session, store.secrets, validate_document(document), policy=InputPolicy.operator()
        )
        return directory.id


def test_a_full_sync_then_an_incremental_sync_of_ten_changes(sqlite_store: Store, graph: GraphKit) -> None:
    sandbox = graph.sandbox
    directory = connect(sqlite_store, graph)
    first = sync(sqlite_store, directory)
    assert first["status"] == "succeeded", first
    active = [u for u, p in sandbox.snapshot()["users"].items() if p["accountEnabled"]]
    assert first["counts"]["users_created"] == len(active)
    assert first["counts"]["groups_created"] == len(sandbox.snapshot()["groups"])
    # The connector selected the mapping's field on top of its own.
    first_delta = next(r for r in sandbox.requests if r.path == "/v1.0/users/delta")
    assert "department" in first_delta.query

    users = sorted(active)
    for uid in users[:4]:
        sandbox.update_user(uid, {"displayName": f"Renamed {uid[:6]}"})
    for uid in users[4:7]:
        sandbox.update_user(uid, {"department": "Finance"})
    sandbox.delete_user(users[7])
    sandbox.delete_user(users[8], permanent=True)
    sandbox.add_user({"displayName": "New Hire"})
    sandbox.reset_stats()

    second = sync(sqlite_store, directory)
    assert second["status"] == "succeeded", second
    assert second["mode"] == "incremental"
    counts = second["counts"]
    assert counts["users_created"] == 1
    assert counts["users_deactivated"] == 2
    assert counts["users_updated"] == 7
    assert sandbox.served["users"] + sandbox.served["users_removed"] == 10, (
        second["notes"],
        [f"{r.path}?{r.query}"[:160] for r in sandbox.requests if r.path.startswith("/v1.0")],
    )
    assert sum(1 for r in sandbox.requests if r.path.startswith("/v1.0")) <= 6


def test_an_incremental_run_loads_and_plans_only_the_users_it_touches(sqlite_store: Store, graph: GraphKit) -> None:
    sandbox = graph.sandbox
    directory = connect(sqlite_store, graph)
    sync(sqlite_store, directory)
    changed = sorted(u for u, p in sandbox.snapshot()["users"].items() if p["accountEnabled"])[0]
    sandbox.update_user(changed, {"department": "Finance"})
    with statements(sqlite_store) as seen:
        second = sync(sqlite_store, directory)
    assert (second["mode"], second["status"]) == ("incremental", "succeeded")
    assert second["counts"]["users_updated"] == 1 and second["counts"]["users_planned"] == 1
    # Every user the run did not plan counts as unchanged, disabled ones included.
    assert second["counts"]["users_unchanged"] == len(sandbox.snapshot()["users"]) - 1
    selects = [(s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT") and "FROM source_objects" in s]
    # Only mirrored groups' data is read: the read brought the one user the run plans.
    data_reads = [p for s, p in selects if "source_objects.data" in s]
    assert data_reads and all("group" in p for p in data_reads)
    # Of the users' digests, only that user's.
    digests = [p for s, p in selects if "source_objects.hash" in s and "group" not in p]
    assert [v for p in digests for v in p if isinstance(v, str) and v != "user"] == [changed]


def test_expired_delta_state_falls_back_to_a_full_sync_noted_in_the_run(sqlite_store: Store, graph: GraphKit) -> None:
    directory = connect(sqlite_store, graph)
    assert sync(sqlite_store, directory)["status"] == "succeeded"
    graph.sandbox.expire_delta_tokens("location")
    again = sync(sqlite_store, directory)
    assert again["status"] == "succeeded"
    assert any("expired the delta state" in note for note in again["notes"]), again["notes"]
    assert again["counts"]["users_created"] == 0 and again["counts"]["users_deactivated"] == 0


def test_error_cases_fail_the_run_with_an_actionable_message(sqlite_store: Store, graph: GraphKit) -> None:
    directory = connect(sqlite_store, graph)
    graph.sandbox.set_permissions(graph.sandbox.client_id, ["User.Read.All"])
    denied = sync(sqlite_store, directory)
    assert denied["status"] == "failed"
    assert "GroupMember.Read.All" in denied["message"]

    graph.sandbox.set_permissions(graph.sandbox.client_id, ["User.Read.All", "GroupMember.Read.All"])
    graph.sandbox.apps[graph.sandbox.client_id].secrets = ["rotated"]
    refused = sync(sqlite_store, directory)
    assert refused["status"] == "failed"
    assert "client secret" in refused["message"] and "AADSTS7000215" in refused["message"]
    with sqlite_store.transaction() as session:
        assert session.get_one(Directory, directory) is not None
        assert identity.list_users(session) == []


def test_full_sync_interval_forces_a_full_reconciliation(sqlite_store: Store, graph: GraphKit) -> None:
    directory = connect(sqlite_store, graph)
    assert sync(sqlite_store, directory)["mode"] == "full"
    assert sync(sqlite_store, directory)["mode"] == "incremental"
    with sqlite_store.transaction() as session:
        found = session.get_one(Directory, directory)
        found.settings = {**found.settings, "full_sync_interval": "1s"}
    time.sleep(1.1)
    again = sync(sqlite_store, directory)
    assert (again["mode"], again["status"], again["counts"]["users_unchanged"] > 0) == ("full", "succeeded", True)


def test_secrets_from_the_environment_are_encrypted_and_never_shown(
    sqlite_store: Store, graph: GraphKit, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", graph.sandbox.client_secret)
    directory = connect(sqlite_store, graph, client_secret="env:CONTOSO_SECRET")
    assert sync(sqlite_store, directory)["status"] == "succeeded"
    with sqlite_store.transaction() as session:
        found = session.get_one(Directory, directory)
        exported = dirs.export_document(session, found)
        shown = dirs.directory_json(session, found)
    assert exported["connection"]["client_secret"] == "env:CONTOSO_SECRET"
    assert graph.sandbox.client_secret not in json.dumps(shown, default=str)
    with sqlite_store.engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT secrets, connection FROM directories").one()
    assert graph.sandbox.client_secret.encode() not in bytes(raw[0])
    assert graph.sandbox.client_secret not in str(raw[1])
