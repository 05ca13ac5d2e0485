"""The other pages an administrator uses: attribute mapping with live preview, settings, connection, users,
API tokens, sign-in and sign-out, CSRF protection."""

from __future__ import annotations

from typing import Any

import httpx
from browser_steps import ADMIN_EMAIL, ADMIN_PASSWORD, Server, connected_directory, create_admin, shot, sign_in


def test_attribute_mapping_editor_previews_live(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)
    page.goto(f"/directories/{directory}/attributes")
    page.locator("[data-sample-head=u0]").wait_for()
    assert page.inner_text("[data-sample=u0] [data-attr=email]") == "user0@example.com"

    page.click("#add-attribute")
    row = page.locator("#attribute-rows tr").last
    row.locator("input[name=target]").fill("city")
    row.locator("input[name=source]").fill("location.city")
    page.locator("[data-sample=u0] [data-attr=city]").wait_for()
    assert page.inner_text("[data-sample=u0] [data-attr=city]") == "Lisbon"

    display = page.locator("input[aria-label='Source for display_name']")
    display.fill("{{ given_name }} - {{ department | upper }}")
    from playwright.sync_api import expect  # the browser fixture checks that it is installed

    expect(page.locator("[data-sample=u1] [data-attr=display_name]")).to_have_text("U1 - ENGINEERING")
    shot(page, "30-attribute-mapping-live-preview")

    display.fill("{{ given_name ")
    page.locator("#preview .notice.error").wait_for()
    assert "does not parse" in page.inner_text("#preview")
    display.fill("{{ given_name }} {{ family_name }}")
    page.locator("[data-sample=u0] [data-attr=display_name]").wait_for()
    page.click("#save-mapping")
    page.get_by_text("Attribute mapping saved.").wait_for()
    assert page.input_value("#attribute-rows tr:last-child input[name=target]") == "city"
    shot(page, "31-attribute-mapping-saved")


def test_settings_connection_and_review_pages(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)

    page.goto(f"/directories/{directory}/settings")
    page.check("input[name=schedule_enabled]")
    page.fill("#frequency", "15m")
    page.click("#save-settings")
    page.get_by_text("Settings saved.").wait_for()
    assert page.is_checked("input[name=schedule_enabled]")
    shot(page, "32-directory-settings")
    page.fill("#frequency", "every so often")
    page.click("#save-settings")
    page.locator("[data-error-for=frequency]", has_text="'every so often' is neither an interval").wait_for()

    page.goto(f"/directories/{directory}/connection")
    page.click("#test-connection")
    page.get_by_text("Connection works.").wait_for()
    shot(page, "33-directory-connection")

    page.goto(f"/directories/{directory}/mappings")
    assert page.locator("#mapping-rows tr").count() == 1
    shot(page, "34-group-mappings")

    page.goto("/users?q=user1")
    page.get_by_role("link", name="U1 Doe").click()
    page.get_by_text("acme-eng").first.wait_for()
    shot(page, "35-user-detail")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Deactivate").click()
    page.get_by_text("Sync will not reactivate this user.").wait_for()


def test_api_tokens_page(page: Any, server: Server) -> None:
    create_admin(server.store)
    sign_in(page)
    page.goto("/settings/tokens")
    page.fill("#token-name", "monitoring")
    page.select_option("#token-scope", "read")
    page.get_by_role("button", name="Create token").click()
    secret = page.inner_text("#new-token").strip()
    assert secret.startswith("aiq_")
    shot(page, "36-api-tokens")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{server.url}/api/v1/directories", headers=bearer).status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    page.get_by_text("Token monitoring revoked").wait_for()
    assert httpx.get(f"{server.url}/api/v1/directories", headers=bearer).status_code == 401


def test_sign_in_sign_out_and_protection(page: Any, server: Server) -> None:
    create_admin(server.store)
    page.goto("/users")
    page.wait_for_url("**/login?next=/users")
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", "not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong email or password.").wait_for()
    shot(page, "37-sign-in-error")
    page.fill("#password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/users")

    # A form posted without the session's CSRF token is refused, even with the session cookie.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    forged = httpx.post(f"{server.url}/organizations", data={"slug": "evil"}, cookies=cookies, follow_redirects=False)
    assert forged.status_code == 403

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.get_by_text("You are signed out.").wait_for()
    shot(page, "38-signed-out")
    page.goto("/directories")
    page.wait_for_url("**/login?next=/directories")
