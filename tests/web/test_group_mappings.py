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
    from playwright.sync_api import expect  # the browser fixture checks that it is installed

    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    page.goto(f"/directories/{directory}/mappings")
    _add_row(page, "Engineering", "acme", "owner")
    page.click("#add-mapping")
    _add_row(page, "Engineering", "acme", "viewer")
    page.get_by_role("button", name="Save mappings").click()
    notice = page.locator(".notice.error")
    notice.wait_for()
    # Told by the row on the page, after a blank row the administrator added and left.
    assert notice.inner_text() == (
        "Row 4: group Engineering is mapped to organization acme twice, as owner and as viewer "
        "(keep one of the two rows, with the role its members should have there)."
    )
    # The refused rows stay on the page to be corrected.
    assert _rows(page) == [
        ("Engineering", "acme-eng", "admin"),
        ("Engineering", "acme", "owner"),
        ("", "", "member"),
        ("Engineering", "acme", "viewer"),
    ]
    shot(page, "60-group-mappings-pair-twice-refused")

    page.locator("#mapping-rows tr").last.locator("select[name=organization]").select_option("")
    page.get_by_role("button", name="Save mappings").click()
    expect(notice).to_have_text("Organization in row 4: choose an organization.")
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
        page.get_by_text("Connection saved and tested.").wait_for()
        page.goto(f"/directories/{directory}/mappings")
        page.get_by_role("button", name="Save mappings").click()
        page.get_by_text("Group mappings saved.").wait_for()
    assert _rows(page) == saved
    shot(page, "61-group-mappings-after-saving-every-tab")


def _create_organization(page: Any, slug: str, name: str) -> None:
    details = page.locator("#new-org")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    page.fill("#org-slug", slug)
    page.fill("#org-name", name)
    page.click("#create-org")


def test_creating_an_organization_keeps_the_unsaved_rows(page: Any, server: Server, snapshot: Any) -> None:
    from playwright.sync_api import expect  # the browser fixture checks that it is installed

    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    # The Group mappings tab: one row edited, one typed, nothing saved.
    page.goto(f"/directories/{directory}/mappings")
    page.locator("#mapping-rows tr").first.locator("select[name=role]").select_option("owner")
    page.click("#add-mapping")
    row = page.locator("#mapping-rows tr").last
    row.locator("select[name=source_group]").select_option("Sales")
    row.locator("select[name=role]").select_option("viewer")
    _create_organization(page, "acme", "Taken")
    page.locator("#new-org .notice.error").wait_for()
    assert "organization 'acme' already exists" in page.inner_text("#new-org")
    assert _rows(page) == [("Engineering", "acme-eng", "owner"), ("Sales", "", "viewer")]
    assert page.input_value("#org-slug") == "acme"
    shot(page, "65-group-mappings-new-organization-refused")

    _create_organization(page, "<b>bold</b>", "x")
    expect(page.locator("#new-org .notice.error")).to_contain_text("'<b>bold</b>' is not a slug")
    assert page.locator("#new-org b").count() == 0
    _create_organization(page, "acme-long", "x" * 201)
    expect(page.locator("#new-org .notice.error")).to_contain_text("name: an organization's name has at most 200")
    assert _rows(page) == [("Engineering", "acme-eng", "owner"), ("Sales", "", "viewer")]

    # Enter in the name field creates the organization, as its button does.
    page.fill("#org-slug", "acme-sales")
    page.fill("#org-name", "Acme Sales")
    page.press("#org-name", "Enter")
    page.get_by_text("Organization acme-sales created. The mappings below are not saved yet.").wait_for()
    # The typed rows are back, and the row that waited for an organization has the new one.
    assert _rows(page) == [("Engineering", "acme-eng", "owner"), ("Sales", "acme-sales", "viewer")]
    shot(page, "66-group-mappings-new-organization-created")
    page.get_by_role("button", name="Save mappings").click()
    page.get_by_text("Group mappings saved.").wait_for()
    assert _rows(page) == [("Engineering", "acme-eng", "owner"), ("Sales", "acme-sales", "viewer")]

    # The wizard's group-mapping step does the same.
    page.goto(f"/directories/{directory}/setup/mappings")
    page.click("#add-mapping")
    page.locator("#mapping-rows tr").last.locator("select[name=source_group]").select_option("Platform")
    _create_organization(page, "acme-platform", "Acme Platform")
    page.get_by_text("Organization acme-platform created.").wait_for()
    assert _rows(page) == [
        ("Engineering", "acme-eng", "owner"),
        ("Sales", "acme-sales", "viewer"),
        ("Platform", "acme-platform", "member"),
    ]
    shot(page, "67-wizard-mappings-new-organization-created")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/setup/preview")
    page.goto(f"/directories/{directory}/mappings")
    assert _rows(page)[-1] == ("Platform", "acme-platform", "member")
