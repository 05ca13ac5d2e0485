"""The Add Directory wizard for a SCIM directory: base URL and a token shown once; pushes on the dashboard."""

from __future__ import annotations

from typing import Any

import httpx
from browser_steps import Server, company, create_admin, file_directory, shot, sign_in, start_wizard


def test_scim_wizard_shows_the_endpoint_and_a_token_once(page: Any, server: Server) -> None:
    create_admin(server.store)
    sign_in(page)
    start_wizard(page, "Pushed", "SCIM (push from Entra ID, Okta, …)")
    page.get_by_role("button", name="Save and test connection").click()
    page.wait_for_url("**/setup/test")
    directory_id = page.url.split("/directories/")[1].split("/")[0]
    base = page.locator("#scim-base-url").inner_text().strip()
    assert base == f"{server.url}/scim/v2/{directory_id}"
    page.locator("#scim-no-token").wait_for()

    page.locator("#create-scim-token").click()
    token = page.locator("#new-scim-token").inner_text().strip()
    assert token.startswith("aiqscim_")
    shot(page, "scim-token")
    page.locator("#scim-token-done").click()
    page.wait_for_url("**/setup/test")
    # Listed by its prefix only; the secret is not on the page any more.
    assert token[:12] in page.locator("#scim-endpoint").inner_text()
    assert token not in page.content()

    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "primary": True}],
        "active": True,
    }
    pushed = httpx.post(f"{base}/Users", json=body, headers={"Authorization": f"Bearer {token}"})
    assert pushed.status_code == 201, pushed.text

    page.goto(f"/directories/{directory_id}")
    page.locator("#scim-endpoint").wait_for()
    assert "push · incremental" in page.locator("table").last.inner_text()
    # Nothing to schedule: the identity provider sends the changes.
    assert "Changes apply as the identity provider sends them" in page.locator("#next-sync").inner_text()
    assert page.locator("#next-sync a", has_text="Enable the schedule").count() == 0
    assert "changes pushed by SCIM" in page.locator(".page-head .sub").inner_text()
    shot(page, "scim-dashboard")
    assert server.console_errors == []


def test_a_pulled_directory_that_receives_pushes_shows_its_scim_endpoint(
    page: Any, server: Server, snapshot: Any
) -> None:
    create_admin(server.store)
    directory = file_directory(server.store, "Corp", company(snapshot))
    sign_in(page)
    page.goto(f"/directories/{directory}")
    assert page.locator("#scim-endpoint").count() == 0

    page.goto(f"/directories/{directory}/settings")
    page.locator("#push").check()
    page.locator("#save-settings").click()
    page.get_by_text("Settings saved.").wait_for()
    assert page.locator("#push").is_checked()
    page.goto(f"/directories/{directory}")
    base = page.locator("#scim-base-url").inner_text().strip()
    assert base == f"{server.url}/scim/v2/{directory}"
    page.locator("#create-scim-token").click()
    token = page.locator("#new-scim-token").inner_text().strip()
    listed = httpx.get(f"{base}/Users", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    shot(page, "scim-pulled-push")
    assert server.console_errors == []
