"""A directory whose Add Directory wizard was left before its preview: the list and the dashboard say
setup is not finished and resume at the step where it stopped; Sync Now asks for the preview first."""

from __future__ import annotations

from typing import Any

from browser_steps import Server, company, create_admin, shot, sign_in, start_wizard

from accessiq.services import directories as dirs
from accessiq.services import runs


def _start_wizard(page: Any, snapshot: Any) -> int:
    """Sign in, name a file directory, save its path: the wizard is at its connection test."""
    path = company(snapshot)
    sign_in(page)
    start_wizard(page, "Half done", "JSON snapshot file")
    page.fill("#connection-path", str(path))
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()
    return int(page.url.split("/directories/")[1].split("/")[0])


def test_abandoned_setup_is_resumed_where_it_stopped(page: Any, server: Server, snapshot: Any) -> None:
    create_admin(server.store)
    directory = _start_wizard(page, snapshot)
    page.click("#continue")
    page.wait_for_url("**/setup/settings")
    page.get_by_role("link", name="Leave setup").click()
    page.wait_for_url(f"**/directories/{directory}")

    # The dashboard: not finished, resume at Settings.
    notice = page.inner_text("#setup-unfinished")
    assert "Setup not finished" in notice and "Settings" in notice, notice
    assert page.locator("#setup-unfinished [data-resume]").get_attribute("href") == (
        f"/directories/{directory}/setup/settings"
    )
    shot(page, "62-dashboard-setup-unfinished")

    # Sync Now asks for the preview first and queues nothing.
    page.click("#sync-now")
    page.wait_for_url(f"**/directories/{directory}/setup/preview")
    assert "preview the first sync" in page.inner_text("main")
    with server.store.transaction() as session:
        assert runs.list_runs(session, dirs.get_directory(session, directory)) == []
    shot(page, "63-sync-now-asks-for-preview")

    # The list: the preview step is where it stopped now.
    page.goto("/directories")
    row = page.locator("tr", has_text="Half done")
    assert "setup not finished" in row.inner_text()
    assert row.locator("[data-resume]").get_attribute("href") == f"/directories/{directory}/setup/preview"
    shot(page, "64-list-setup-unfinished")

    # Resume, preview, apply and finish: the directory is an ordinary one now.
    row.locator("[data-resume]").click()
    page.click("#run-preview")
    page.locator("#apply-preview").wait_for()
    page.click("#apply-preview")
    page.wait_for_url("**/setup/schedule*")
    page.click("#finish")
    page.wait_for_url(f"**/directories/{directory}")
    assert page.locator("#setup-unfinished").count() == 0
    page.goto("/directories")
    assert "setup not finished" not in page.locator("tr", has_text="Half done").inner_text()


def test_setup_left_at_the_test_step_resumes_there(page: Any, server: Server, snapshot: Any) -> None:
    create_admin(server.store)
    directory = _start_wizard(page, snapshot)
    page.goto("/directories")
    row = page.locator("tr", has_text="Half done")
    assert row.locator("[data-resume]").get_attribute("href") == f"/directories/{directory}/setup/test"
    # A dry run from the dashboard is no shortcut around the preview step either.
    page.goto(f"/directories/{directory}")
    page.get_by_role("button", name="Dry run").click()
    page.wait_for_url(f"**/directories/{directory}/setup/preview")
