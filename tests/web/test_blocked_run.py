"""A snapshot edit that would deactivate more users than the safety thresholds allow: Sync Now shows live
progress, the run stops as blocked, the administrator reviews it in the sync log and approves it."""

from __future__ import annotations

from typing import Any

from browser_steps import Server, connected_directory, create_admin, shot, sign_in


def test_blocked_run_is_reviewed_and_approved(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    for ext in ("u0", "u1", "u2", "u3"):
        snapshot.remove(ext)
    snapshot.write()

    # Sync Now: the run waits in the queue until the (test's) worker takes it; the page polls its progress.
    page.goto(f"/directories/{directory}")
    server.launcher.gate.clear()
    page.click("#sync-now")
    page.locator("#run-progress[data-status=queued]").wait_for()
    assert "waiting for a worker" in page.inner_text("#run-progress")
    shot(page, "20-sync-now-live-progress")
    server.launcher.gate.set()

    # When the run ends the page reloads by itself and shows the block.
    blocked = page.get_by_text("is blocked and applied nothing")
    blocked.wait_for()
    shot(page, "21-dashboard-blocked-run")
    page.get_by_role("link", name="Review and approve or reject").click()

    page.wait_for_url("**/runs/2")
    page.get_by_text("This run is blocked: it applied nothing.").wait_for()
    assert page.inner_text("[data-count=users_deactivated]") == "4"
    shot(page, "22-run-detail-blocked")
    page.select_option("#f-action", "deactivate")
    page.wait_for_url("**/runs/2?object=&action=deactivate")
    assert page.locator("table.changes tbody tr").count() == 4
    shot(page, "23-run-detail-filtered")

    page.click("#approve-run")
    page.wait_for_url("**/runs/3")
    page.get_by_text("Run #2 approved: its plan was applied as run #3.").wait_for()
    assert page.inner_text("[data-count=users_deactivated]") == "4"
    shot(page, "24-run-approved")

    page.goto(f"/directories/{directory}")
    assert page.inner_text("[data-count=users_deactivated]") == "4"
    assert page.get_by_text("is blocked and applied nothing").count() == 0
    page.goto("/users?status=deactivated")
    assert page.locator("tbody tr").count() == 4
    page.goto("/runs")
    assert page.locator("tbody tr").count() == 3
    shot(page, "25-sync-log")


def test_blocked_run_can_be_rejected(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)
    snapshot.users = []
    snapshot.write()
    page.goto(f"/directories/{directory}")
    page.click("#sync-now")
    page.get_by_role("link", name="Review and approve or reject").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#reject-run")
    page.get_by_text("Run #2 rejected: nothing was applied.").wait_for()
    page.goto("/users?status=active")
    assert page.locator("tbody tr").count() == 5
