"""Sync a generated 10,000-user snapshot: first sync, unchanged re-sync, re-sync after 10 changes.

    python benchmarks/file_sync.py [--users N] [--groups M] [--database-url URL]

Prints a table of wall-clock times and the counts of each run; exits non-zero if the
unchanged re-sync reports any change.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accessiq.config import Settings
from accessiq.logs import configure_logging
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import open_store
from accessiq.store.tables import Directory
from accessiq.sync.document import validate_document


def generate(users: int, groups: int, seed: int = 1, per_user: tuple[int, int] = (1, 3)) -> dict[str, Any]:
    """A snapshot: each user in `per_user` (least, most) of the groups; every tenth group holds the next."""
    rnd = random.Random(seed)
    records = [
        {
            "id": f"u{i:06d}",
            "email": f"user{i}@example.com",
            "username": f"user{i}",
            "given_name": f"Given{i}",
            "family_name": f"Family{i % 997}",
            "display_name": f"Given{i} Family{i % 997}",
            "department": rnd.choice(["R&D", "Sales", "Support", "Finance"]),
            "active": True,
        }
        for i in range(users)
    ]
    group_records: list[dict[str, Any]] = [
        {"id": f"g{j:04d}", "name": f"Group {j}", "members": []} for j in range(groups)
    ]
    for record in records:
        for group in rnd.sample(group_records, k=min(groups, rnd.randint(*per_user))):
            group["members"].append(record["id"])
    # Some nesting: every tenth group holds the next one.
    for j in range(0, groups - 1, 10):
        group_records[j]["members"].append(group_records[j + 1]["id"])
    return {"users": records, "groups": group_records}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args()
    configure_logging("warning")

    with tempfile.TemporaryDirectory() as base:
        path = Path(base) / "snapshot.json"
        data = generate(args.users, args.groups)
        path.write_text(json.dumps(data))
        store = open_store(Settings(data_dir=Path(base), database_url=args.database_url))
        if store.dialect == "postgresql":
            from sqlalchemy import text

            from accessiq.store.tables import Base

            with store.transaction() as session:  # start from an empty store
                names = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "roles")
                session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        with store.transaction() as session:
            identity.create_organization(session, "acme")
            identity.create_organization(session, "eng")
            document = {
                "name": "Bench",
                "provider": "file",
                "connection": {"path": str(path)},
                "settings": {
                    "default_organization": "acme",
                    "attribute_mapping": {"department": "department"},
                },
                "group_mappings": [{"source_group": "Group 0", "organization": "eng", "role": "admin"}],
            }
            directory_id = dirs.apply_document(
                session, store.secrets, validate_document(document), policy=InputPolicy.operator()
            )[0].id

        def timed_sync(label: str) -> dict[str, Any]:
            with store.transaction() as session:
                run, _ = runs.request_sync(session, session.get_one(Directory, directory_id))
                run_id = run.id
            started = time.perf_counter()
            runs.run_now(store, run_id)
            elapsed = time.perf_counter() - started
            with store.transaction() as session:
                result = runs.run_json(session, runs.get_run(session, run_id))
            counts = result["counts"]
            changed = sum(
                counts[k]
                for k in (
                    "users_created",
                    "users_updated",
                    "users_deactivated",
                    "users_reactivated",
                    "groups_created",
                    "groups_updated",
                    "groups_deleted",
                    "memberships_added",
                    "memberships_removed",
                )
            )
            print(
                f"| {label:<28} | {elapsed:7.2f} s | {result['status']:<9} | {counts['users_created']:>7} | "
                f"{counts['users_updated']:>7} | {counts['users_unchanged']:>9} | {counts['memberships_added']:>7} |"
                f" {changed:>7} |"
            )
            return {"elapsed": elapsed, "changed": changed, "status": result["status"]}

        print(f"{args.users} users, {args.groups} groups, {store.dialect}")
        print(
            "| run                          |    time   | status    | created | updated "
            "| unchanged | m.added | changes |"
        )
        print(
            "|------------------------------|-----------|-----------|---------|---------|-----------|---------|---------|"
        )
        timed_sync("first sync")
        unchanged = timed_sync("unchanged re-sync")
        for record in data["users"][:10]:
            record["department"] = "Changed"
        path.write_text(json.dumps(data))
        timed_sync("re-sync after 10 changes")
        store.dispose()
    if unchanged["changed"] != 0:
        print("FAIL: the unchanged re-sync reported changes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
