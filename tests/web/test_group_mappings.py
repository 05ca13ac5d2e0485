"""Group mappings in the browser: one row per group and organization, whatever tab is saved."""

from __future__ import annotations

from typing import Any

from browser_steps import Server, connected_directory, create_admin, shot, sign_in


def _add_row(page: Any, group: str, organization: str, role: str) -> None:
    page.click("#add-mapping")
    row = page.locator("#mapping-rows tr").last
    row.locator("select[name=source_group]").select_option(group)
    row.locator("select[name=organization]").select_option(organization)
    row.locator("select[name=role]").select_option(role)


def _rows(page: Any) -> list[tuple[str, str, str]]:
    rows = page.locator("#mapping-rows tr")
    names = ("source_group", "organization", "role")
    return [
        tuple(rows.nth(i).locator(f"select[name={name}]").input_value() for name in names) for i in range(rows.count())
    ]


def test_a_group_mapped_twice_to_one_organization_is_refused_and_saves_never_multiply(
    page: Any, server: Server, snapshot: Any
) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    page.goto(f"/directories/{directory}/mappings")
    _add_row(page, "Engineering", "acme", "owner")
    _add_row(page, "Engineering", "acme", "viewer")
    page.get_by_role("button", name="Save mappings").click()
    notice = page.locator(".notice.error")
    notice.wait_for()
    assert "group Engineering is mapped to organization acme twice, as owner and as viewer" in notice.inner_text()
    # The refused rows stay on the page to be corrected.
    assert _rows(page) == [
        ("Engineering", "acme-eng", "admin"),
        ("Engineering", "acme", "owner"),
        ("Engineering", "acme", "viewer"),
    ]
    shot(page, "60-group-mappings-pair-twice-refused")

    page.locator("#mapping-rows tr").last.get_by_role("button", name="Remove").click()
    page.get_by_role("button", name="Save mappings").click()
    page.get_by_text("Group mappings saved.").wait_for()
    saved = [("Engineering", "acme-eng", "admin"), ("Engineering", "acme", "owner")]
    assert _rows(page) == saved

    # Every tab saves the whole directory: none of them may add copies of the mappings.
    for _ in range(2):
        page.goto(f"/directories/{directory}/settings")
        page.click("#save-settings")
        page.get_by_text("Settings saved.").wait_for()
        page.goto(f"/directories/{directory}/attributes")
        page.click("#save-mapping")
        page.get_by_text("Attribute mapping saved.").wait_for()
        page.goto(f"/directories/{directory}/connection")
        page.get_by_role("button", name="Save connection").click()
        page.get_by_text("Connection saved.").wait_for()
        page.goto(f"/directories/{directory}/mappings")
        page.get_by_role("button", name="Save mappings").click()
        page.get_by_text("Group mappings saved.").wait_for()
    assert _rows(page) == saved
    shot(page, "61-group-mappings-after-saving-every-tab")
