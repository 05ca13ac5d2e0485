"""An administrator does every step of SPEC §1 in the browser: first sign-in, connect a directory, test,
configure, map groups, preview the first sync, apply it, enable the schedule, and watch the dashboard."""

from __future__ import annotations

from typing import Any

from browser_steps import ADMIN_EMAIL, ADMIN_PASSWORD, Server, company, shot


def test_add_directory_wizard_to_dashboard(page: Any, server: Server, snapshot: Any) -> None:
    path = company(snapshot)

    # First start: no administrator yet, so the app asks for one.
    page.goto("/")
    page.wait_for_url("**/setup")
    shot(page, "01-first-start-setup")
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#confirm", ADMIN_PASSWORD)
    page.get_by_role("button", name="Create administrator").click()
    page.wait_for_url("**/directories")
    page.get_by_text("Your administrator account is ready").wait_for()
    cookie = next(c for c in page.context.cookies() if c["name"] == "aiq_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    shot(page, "02-directory-sync-empty")

    # Organizations to map groups into.
    page.goto("/organizations")
    for slug, name in (("acme", "Acme"), ("acme-eng", "Acme Engineering")):
        page.fill("#org-slug", slug)
        page.fill("#org-name", name)
        page.click("#create-org")
        page.get_by_text(f"Organization {slug} created.").wait_for()
    shot(page, "03-organizations")

    # Step 1: provider and name.
    page.goto("/directories")
    page.click("#add-directory")
    page.fill("#name", "Acme HR")
    page.locator("label.choice", has_text="JSON snapshot file").click()
    shot(page, "04-wizard-provider")
    page.get_by_role("button", name="Continue").click()

    # Step 2: credentials — a wrong path first, to see the message an admin gets.
    page.wait_for_url("**/directories/new/credentials*")
    page.fill("#connection-path", str(path.with_name("missing.json")))
    shot(page, "05-wizard-credentials")
    page.get_by_role("button", name="Save and test connection").click()
    page.wait_for_url("**/setup/test")
    page.get_by_text("The directory could not be reached.").wait_for()
    assert "does not exist" in page.inner_text("#test-result")
    assert page.get_by_role("button", name="Continue").is_disabled()
    shot(page, "06-wizard-test-failed")
    page.get_by_role("link", name="Edit credentials").click()
    page.fill("#connection-path", str(path))
    page.get_by_role("button", name="Save and test connection").click()

    # Step 3: the test passes.
    page.get_by_text("Connection works.").wait_for()
    assert "5 users and 3 groups" in page.inner_text("#test-result")
    shot(page, "07-wizard-test-ok")
    page.click("#continue")

    # Step 4: settings.
    page.wait_for_url("**/setup/settings")
    page.select_option("#default_organization", "acme")
    page.select_option("#default_role", "member")
    page.fill("#max_deactivations", "3")
    shot(page, "08-wizard-settings")
    page.get_by_role("button", name="Save and continue").click()

    # Step 5: group mappings from the directory's real groups and AccessIQ's organizations and roles.
    page.wait_for_url("**/setup/mappings")
    page.click("#add-mapping")
    row = page.locator("#mapping-rows tr").last
    assert row.locator("select[name=source_group] option").all_inner_texts()[1:] == ["Engineering", "Platform", "Sales"]
    row.locator("select[name=source_group]").select_option("Engineering")
    row.locator("select[name=organization]").select_option("acme-eng")
    row.locator("select[name=role]").select_option("admin")
    shot(page, "09-wizard-group-mappings")
    page.get_by_role("button", name="Save and continue").click()

    # Step 6: the first sync as a dry-run preview.
    page.wait_for_url("**/setup/preview")
    page.click("#run-preview")
    page.locator("#apply-preview").wait_for()
    assert page.inner_text("[data-count=users_created]") == "5"
    assert page.inner_text("[data-count=groups_processed]") == "3"
    assert "user1@example.com" in page.inner_text("table.changes")
    shot(page, "10-wizard-preview")
    with server.store.transaction() as session:
        from accessiq.services import identity

        assert identity.list_users(session) == [], "a preview applies nothing"

    # Step 7: apply exactly that plan, then enable the schedule.
    page.click("#apply-preview")
    page.wait_for_url("**/setup/schedule*")
    page.get_by_text("The previewed changes were applied.").wait_for()
    assert page.inner_text("[data-count=users_created]") == "5"
    shot(page, "11-wizard-apply-and-schedule")
    assert page.is_checked("#schedule_enabled")
    page.check("input[name=frequency][value='1h']")
    page.click("#finish")

    # The dashboard shows what the sync did.
    page.wait_for_url("**/directories/1")
    page.get_by_text("Setup complete. Automatic sync is on: hourly.").wait_for()
    assert page.inner_text("[data-count=users_created]") == "5"
    assert page.inner_text("[data-count=users_updated]") == "0"
    assert page.inner_text("[data-count=users_deactivated]") == "0"
    assert page.inner_text("[data-count=groups_processed]") == "3"
    assert "syncs hourly" in page.inner_text(".page-head")
    assert page.locator("svg.chart rect").count() >= 1
    shot(page, "12-directory-dashboard")

    page.goto("/directories")
    row_text = page.inner_text("table")
    assert "Acme HR" in row_text and "hourly" in row_text and "succeeded" in row_text
    shot(page, "13-directory-sync-list")

    page.goto("/users")
    assert page.locator("tbody tr").count() == 5
    assert "acme-eng: admin" in page.inner_text("tbody").replace("\n", " ")
    shot(page, "14-users")
    page.goto("/groups")
    assert page.locator("tbody tr").count() == 3
    shot(page, "15-groups")
