"""A run whose process died shows as lost on the dashboard, the directory list and the sync log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from browser_steps import Server, connected_directory, create_admin, shot, sign_in

from accessiq.jobs import queue
from accessiq.services import directories as dirs
from accessiq.services import runs


def test_dashboard_and_sync_log_show_a_lost_run(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    with server.store.transaction() as session:
        run, _ = runs.request_sync(session, dirs.get_directory(session, directory))
        run_id = run.id
    # A foreground sync claimed it and was killed: its lease lapsed and nothing recovered it yet.
    queue.claim_run(server.store, run_id, "host:4242:cli:dead", timedelta(seconds=-5))
    create_admin(server.store)
    sign_in(page)

    page.goto(f"/directories/{directory}")
    notice = page.locator("#run-progress[data-status=lost]")
    notice.wait_for()
    assert f"Sync #{run_id} is lost: host:4242:cli:dead stopped renewing its lease" in notice.inner_text()
    assert "Nothing of it was applied" in notice.inner_text()
    shot(page, "40-dashboard-lost-run")

    page.goto("/directories")
    assert page.locator("td .badge.bad", has_text="lost").count() == 1
    page.goto("/runs")
    assert page.locator("td .badge.bad", has_text="lost").count() == 1
    shot(page, "41-sync-log-lost-run")
