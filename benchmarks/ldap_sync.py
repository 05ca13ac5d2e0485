"""Sync 10,000 users and 200 groups from a private slapd through the engine, unchanged, then after 10 changes.

    python benchmarks/ldap_sync.py [--users N] [--groups M] [--database-url URL]

The same data size as the peers in reference/test-servers.md (ldap2pg 5.2 s / 2.4 s,
pgldapsync 2.5 s / 1.5 s). The ten changes are a rename, a move between OUs, a
disable, a delete, two attribute edits, a hire and three membership changes; the
last sync must be incremental and apply them (the move changes only the user's DN,
which no mapped attribute shows); the script exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accessiq.config import Settings
from accessiq.logs import configure_logging
from accessiq.sandbox.ldap import SERVICE_ACCOUNTS, SlapdSandbox
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import open_store
from accessiq.store.tables import Directory
from accessiq.sync.document import validate_document


def directory_document(sandbox: SlapdSandbox, name: str, organization: str) -> dict[str, Any]:
    """An `ldap` directory reading the sandbox as its service account, department and title mapped."""
    return {
        "name": name,
        "provider": "ldap",
        "connection": {
            "url": sandbox.url,
            "bind_dn": sandbox.service_dn(),
            "bind_password": SERVICE_ACCOUNTS["accessiq"],
            "base_dn": sandbox.suffix,
        },
        "settings": {
            "default_organization": organization,
            "attribute_mapping": {"department": "departmentNumber", "title": "title"},
        },
    }


def make_ten_changes(sandbox: SlapdSandbox) -> None:
    """A rename, a move, a disable, a delete, two title edits, a hire and three membership changes."""
    people = [p for p in sandbox.population.people if p.active and p.email]
    teams = [g for g in sandbox.population.groups if g.kind == "team" and len(g.member_users) > 1]
    sandbox.rename(people[0].username, "renamed.person")
    sandbox.move(people[1].username, "Legal" if people[1].department != "Legal" else "Finance")
    sandbox.disable_user(people[2].username)
    sandbox.delete(people[3].username)
    sandbox.update_user(people[4].username, {"title": ["Benchmarker"]})
    sandbox.update_user(people[5].username, {"title": ["Benchmarker"]})
    hire = sandbox.add_user(given_name="New", surname="Hire")
    sandbox.change_members(teams[0].name, add=[hire["uid"]])
    sandbox.change_members(teams[1].name, remove=[sandbox.population.by_id[teams[1].member_users[-1]].username])
    sandbox.change_members(teams[2].name, add=[teams[3].name])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args()
    configure_logging("warning")

    with tempfile.TemporaryDirectory() as base, SlapdSandbox(users=args.users, groups=args.groups, seed=1) as sandbox:
        store = open_store(Settings(data_dir=Path(base), database_url=args.database_url))
        with store.transaction() as session:
            identity.create_organization(session, "contoso")
            directory_id = dirs.apply_document(
                session,
                store.secrets,
                validate_document(directory_document(sandbox, "Contoso LDAP", "contoso")),
                policy=InputPolicy.operator(),
            )[0].id

        def timed_sync(label: str, *, full: bool = False) -> dict[str, Any]:
            with store.transaction() as session:
                run_id = runs.request_sync(session, session.get_one(Directory, directory_id), full=full)[0].id
            started = time.perf_counter()
            runs.run_now(store, run_id)
            elapsed = time.perf_counter() - started
            with store.transaction() as session:
                result = runs.run_json(session, runs.get_run(session, run_id))
            c = result["counts"]
            print(
                f"| {label:<26} | {elapsed:6.2f} s | {result['mode']:<11} | {c['users_created']:>7} | "
                f"{c['users_updated']:>7} | {c['users_deactivated']:>11} | {c['memberships_added']:>5} | "
                f"{c['memberships_removed']:>7} |"
            )
            return result

        print(f"{args.users} users, {args.groups} groups, {store.dialect}")
        print(
            "| run                        |   time   | mode        | created | updated | deactivated | added "
            "| removed |"
        )
        print(
            "|----------------------------|----------|-------------|---------|---------|-------------|-------|---------|"
        )
        timed_sync("first sync (full)")
        timed_sync("unchanged re-sync")
        timed_sync("unchanged full re-read", full=True)
        make_ten_changes(sandbox)
        third = timed_sync("after 10 changes")
        store.dispose()
    counts = third["counts"]
    applied = (counts["users_created"], counts["users_updated"], counts["users_deactivated"])
    if third["mode"] != "incremental" or applied != (1, 3, 2):
        print(f"FAIL: expected an incremental run applying (1, 3, 2), got {third['mode']} {applied}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
