"""Sync 10,000 users and 500 groups from the Graph sandbox through the engine, then 10 changes.

    python benchmarks/entra_sync.py [--users N] [--groups M] [--database-url URL]

The second sync must be incremental and apply exactly the changes; the script exits
non-zero otherwise.
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
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app
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
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args()
    configure_logging("warning")

    sandbox = EntraSandbox(args.users, args.groups, seed=1)
    with tempfile.TemporaryDirectory() as base, SandboxServer(create_app(sandbox)) as server:
        store = open_store(Settings(data_dir=Path(base), database_url=args.database_url))
        with store.transaction() as session:
            identity.create_organization(session, "contoso")
            document = {
                "name": "Contoso",
                "provider": "entra",
                "connection": {
                    "tenant_id": sandbox.tenant_id,
                    "client_id": sandbox.client_id,
                    "client_secret": sandbox.client_secret,
                    "authority_url": server.url,
                    "graph_url": server.url,
                },
                "settings": {
                    "default_organization": "contoso",
                    "attribute_mapping": {"department": "department", "title": "jobTitle"},
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
                f"| {label:<26} | {elapsed:6.2f} s | {result['mode']:<11} | {served['requests']:>8} | "
                f"{c['users_created']:>7} | {c['users_updated']:>7} | {c['users_deactivated']:>11} |"
            )
            return result

        print(f"{args.users} users, {args.groups} groups, {store.dialect}")
        print("| run                        |   time   | mode        | requests | created | updated | deactivated |")
        print("|----------------------------|----------|-------------|----------|---------|---------|-------------|")
        timed_sync("first sync (full)")
        users = sorted(u for u, p in sandbox.snapshot()["users"].items() if p["accountEnabled"])
        for uid in users[:6]:
            sandbox.update_user(uid, {"department": "Benchmarking"})
        for uid in users[6:9]:
            sandbox.delete_user(uid)
        sandbox.add_user({"displayName": "New Hire"})
        second = timed_sync("after 10 changes")
        store.dispose()
    counts = second["counts"]
    applied = (counts["users_created"], counts["users_updated"], counts["users_deactivated"])
    if second["mode"] != "incremental" or applied != (1, 6, 3):
        print(f"FAIL: expected an incremental run applying (1, 6, 3), got {second['mode']} {applied}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
