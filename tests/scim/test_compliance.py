"""scim2-tester, the SCIM 2.0 compliance checker, against a live server over HTTP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server
from scim2_tester.utils import Status

from accessiq.config import Settings
from accessiq.server import create_app
from accessiq.store.database import Store

from .conftest import issue, make_directory, push_runs
from .live import live_server

PASSED = (Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE)
# Checks skipped on purpose (README, "Receive changes by SCIM"): POST /.search across every
# resource type at once; /Users/.search and /Groups/.search are served.
EXPECTED_SKIPS = {("User", "search_with_attributes"), ("Group", "search_with_attributes")}


def test_scim2_tester_finds_no_failed_check(sqlite_store: Store, tmp_path: Path) -> None:
    store = sqlite_store  # the face under test; the replays run on both backends
    directory = make_directory(store, safety={"max_deactivations": 10_000, "max_deactivation_percent": 100})
    token = issue(store, directory)
    with live_server(create_app(store, settings=Settings(snapshot_dir=tmp_path))) as url:
        http = httpx2.Client(base_url=f"{url}/scim/v2/{directory}", headers={"Authorization": f"Bearer {token}"})
        with http:
            results = check_server(SyncSCIMClient(http))
    failed = [(r.resource_type, r.title, r.status.name, r.reason) for r in results if r.status not in PASSED]
    skipped = {(r.resource_type, r.title) for r in results if r.status == Status.SKIPPED}
    assert [f for f in failed if f[2] != "SKIPPED"] == []
    assert skipped == EXPECTED_SKIPS
    assert Counter(r.status for r in results)[Status.SUCCESS] >= 120
    # Every write the checker made went through the engine as a push run.
    ran = push_runs(store, directory)
    assert ran and {r["trigger"] for r in ran} == {"push"}
    assert {r["status"] for r in ran} <= {"succeeded", "succeeded_with_errors"}
