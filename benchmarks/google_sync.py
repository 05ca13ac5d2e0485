"""Sync 10,000 users and 500 groups from the Google sandbox with an org-unit filter, then 10 changes.

    python benchmarks/google_sync.py [--users N] [--groups M] [--org-unit PATH ...] [--database-url URL]

The filter is pushed down as one `orgUnitPath='…'` query per unit; member lists are read by a
bounded pool. The ten changes are two hires, three department edits, a suspension, an archive,
a delete and two membership changes, all inside the filter; Google has no change feed, so the
second sync reads everything again and must apply exactly those. The script exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accessiq.config import Settings
from accessiq.logs import configure_logging
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.google import GoogleSandbox
from accessiq.sandbox.google_app import create_app
from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.store.database import open_store
from accessiq.store.tables import Directory
from accessiq.sync.document import validate_document


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--org-unit", action="append", default=None, help="default: /Engineering and /Sales")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args()
    units = args.org_unit or ["/Engineering", "/Sales"]
    configure_logging("warning")

    sandbox = GoogleSandbox(args.users, args.groups, seed=1)
    with tempfile.TemporaryDirectory() as base, SandboxServer(create_app(sandbox)) as server:
        store = open_store(Settings(data_dir=Path(base), database_url=args.database_url))
        with store.transaction() as session:
            identity.create_organization(session, "contoso")
            document = {
                "name": "Contoso",
                "provider": "google",
                "connection": {
                    "service_account": json.dumps(sandbox.service_account_key(f"{server.url}/token")),
                    "admin_email": sandbox.admin_email,
                    "api_url": server.url,
                    "token_url": f"{server.url}/token",
                },
                "settings": {
                    "default_organization": "contoso",
                    "user_filter": {"org_units": units},
                    "attribute_mapping": {
                        "department": "organizations[primary].department",
                        "title": "organizations[primary].title",
                    },
                },
            }
            directory_id = dirs.apply_document(
                session, store.secrets, validate_document(document), policy=InputPolicy.operator()
            )[0].id

        def timed_sync(label: str) -> dict[str, Any]:
            with store.transaction() as session:
                run_id = runs.request_sync(session, session.get_one(Directory, directory_id))[0].id
            sandbox.reset_stats()
            started = time.perf_counter()
            runs.run_now(store, run_id)
            elapsed = time.perf_counter() - started
            with store.transaction() as session:
                result = runs.run_json(session, runs.get_run(session, run_id))
            c, served = result["counts"], sandbox.stats()
            print(
                f"| {label:<18} | {elapsed:6.2f} s | {result['status']:<9} | {served['requests']:>8} | "
                f"{served['by_endpoint'].get('GET /admin/directory/v1/users', 0):>5} | "
                f"{served['by_endpoint'].get('GET /admin/directory/v1/groups/{groupKey}/members', 0):>7} | "
                f"{served['max_in_flight']:>9} | {served['served'].get('users', 0):>10} | {c['users_created']:>7} | "
                f"{c['users_updated']:>7} | {c['users_deactivated']:>11} |"
            )
            return result

        print(f"{args.users} users, {args.groups} groups, org units {', '.join(units)}, {store.dialect}")
        print(
            "| run                |   time   | status    | requests | users | members | in flight | users read "
            "| created | updated | deactivated |"
        )
        print(
            "|--------------------|----------|-----------|----------|-------|---------|-----------|------------"
            "|---------|---------|-------------|"
        )
        first = timed_sync("first sync")

        def in_scope(uid: str) -> bool:
            path = sandbox.users[uid]["orgUnitPath"]
            return any(path == u or path.startswith(u + "/") for u in units)

        active = sorted(
            uid for uid, u in sandbox.users.items() if in_scope(uid) and not u["suspended"] and not u["archived"]
        )
        team = next(g for g in sorted(sandbox.groups) if set(sandbox.direct_users(g)) & set(active[10:]))
        leaver = sorted(set(sandbox.direct_users(team)) & set(active[10:]))[0]
        hires = [sandbox.add_user(org_unit=units[0]) for _ in range(2)]
        for uid in active[:3]:
            sandbox.update_user(uid, {"organizations": [{"department": "Benchmarking", "primary": True}]})
        sandbox.set_state(active[3], suspended=True)
        sandbox.set_state(active[4], archived=True)
        sandbox.delete_user(active[5])
        sandbox.change_members(team, add=[hires[0]["id"]], remove=[leaver])
        second = timed_sync("after 10 changes")
        store.dispose()
    counts = second["counts"]
    applied = (counts["users_created"], counts["users_updated"], counts["users_deactivated"])
    if first["status"] != "succeeded" or second["status"] != "succeeded" or applied != (2, 3, 3):
        print(f"FAIL: expected a second run applying (2, 3, 3), got {second['status']} {applied}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
