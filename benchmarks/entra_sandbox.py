"""Benchmark: the Entra connector against the Graph sandbox at 10,000 users and 500 groups.

Seeds the sandbox, serves it on a loopback port, reads everything through the
connector (first delta round), makes ten changes, reads again from the cursor
and reports timings, requests and records transferred. Run it directly:

    python benchmarks/entra_sandbox.py [--users N] [--groups M]

or call `run_benchmark()` from a harness; it raises AssertionError when the
incremental round transfers more than the changes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from typing import Any

from accessiq.connectors.base import ReadFinished, ReadStarted
from accessiq.connectors.entra import EntraConnection, EntraConnector
from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app


def _make_changes(sandbox: EntraSandbox) -> int:
    """Ten changes of every kind an incremental round must carry; returns how many users they touch."""
    users = sorted(sandbox.snapshot()["users"])
    groups = sandbox.population.groups
    for uid in users[:3]:
        sandbox.update_user(uid, {"displayName": f"Renamed {uid[:8]}"})
    sandbox.disable_user(users[3])
    sandbox.delete_user(users[4])
    sandbox.delete_user(users[5], permanent=True)
    hired = sandbox.add_user({"displayName": "New Hire"})
    sandbox.change_members(groups[-1].id, add=[hired["id"]])
    sandbox.change_members(groups[-2].id, add=[groups[-3].id])
    sandbox.update_group(groups[-4].id, {"displayName": "Renamed Group"})
    return 7


def run_benchmark(users: int = 10_000, groups: int = 500, seed: int = 1) -> dict[str, Any]:
    """Full read, ten changes, incremental read; returns the measurements."""
    started = time.perf_counter()
    sandbox = EntraSandbox(users, groups, seed=seed)
    seeded = time.perf_counter() - started
    with SandboxServer(create_app(sandbox)) as server:
        settings = EntraConnection(
            tenant_id=sandbox.tenant_id,
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            authority_url=server.url,
            graph_url=server.url,
        )
        # The default mapping's fields plus a few an admin typically adds.
        fields = (
            "displayName",
            "givenName",
            "surname",
            "mail",
            "userPrincipalName",
            "department",
            "jobTitle",
            "employeeId",
        )
        connector = EntraConnector(settings, fields=fields)
        try:
            started = time.perf_counter()
            full_events: Counter[str] = Counter()
            cursor = None
            for event in connector.read(None):
                full_events[type(event).__name__] += 1
                if isinstance(event, ReadFinished):
                    cursor = event.cursor
            full_seconds = time.perf_counter() - started
            full_stats = sandbox.stats()

            touched_users = _make_changes(sandbox)
            sandbox.reset_stats()
            started = time.perf_counter()
            incremental_events: Counter[str] = Counter()
            full_again = None
            for event in connector.read(cursor):
                incremental_events[type(event).__name__] += 1
                if isinstance(event, ReadStarted):
                    full_again = event.full
            incremental_seconds = time.perf_counter() - started
            incremental_stats = sandbox.stats()
        finally:
            connector.close()
    served = incremental_stats["served"]
    assert full_again is False, "the second read must be incremental"
    assert full_events["UserUpserted"] == users, full_events
    assert served.get("users", 0) + served.get("users_removed", 0) == touched_users, served
    assert incremental_events["UserUpserted"] + incremental_events["UserRemoved"] == touched_users
    return {
        "users": users,
        "groups": groups,
        "seed_seconds": round(seeded, 3),
        "full_read_seconds": round(full_seconds, 3),
        "full_read_requests": full_stats["requests"],
        "full_read_served": full_stats["served"],
        "full_read_events": dict(full_events),
        "incremental_read_seconds": round(incremental_seconds, 3),
        "incremental_requests": incremental_stats["requests"],
        "incremental_served": served,
        "incremental_events": dict(incremental_events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run_benchmark(args.users, args.groups, args.seed), indent=2))


if __name__ == "__main__":
    main()
