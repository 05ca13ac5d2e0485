"""The Add Directory wizard against the Google Workspace sandbox: a key file uploaded, a non-admin
refused first, an org-unit filter set, the group picker, previewed and applied, ending on the dashboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_steps import Server, create_admin, preview_apply_finish, shot, sign_in, start_wizard

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.google import GoogleSandbox
from accessiq.sandbox.google_app import create_app


@pytest.fixture
def workspace() -> Iterator[tuple[GoogleSandbox, str]]:
    sandbox = GoogleSandbox(60, 8, seed=3)
    with SandboxServer(create_app(sandbox)) as served:
        yield sandbox, served.url


def test_google_wizard_against_the_google_sandbox(
    page: Any, server: Server, workspace: tuple[GoogleSandbox, str], tmp_path: Path
) -> None:
    sandbox, url = workspace
    users = sandbox.snapshot()["users"].values()
    in_sales = sum(
        1 for u in users if u["active"] and (u["org_unit"] == "/Sales" or u["org_unit"].startswith("/Sales/"))
    )
    assert in_sales and any(u["org_unit"] == "/Salesforce Admins" for u in users)
    regular = sorted(u["email"] for u in users if u["email"] != sandbox.admin_email)[0]
    key = tmp_path / "service-account.json"
    key.write_text(json.dumps(sandbox.service_account_key(f"{url}/token")), encoding="utf-8")
    create_admin(server.store)
    sign_in(page)

    start_wizard(page, "Contoso Workspace", "Google Workspace")
    page.set_input_files("#connection-service_account-file", str(key))
    page.fill("#connection-admin_email", regular)
    page.fill("#connection-api_url", url)
    page.fill("#connection-token_url", f"{url}/token")
    page.get_by_role("button", name="Save and test connection").click()
    page.wait_for_url("**/setup/test")
    result = page.inner_text("#test-result")
    assert f"{regular} may not read users" in result and "super admin" in result, result
    assert page.get_by_role("button", name="Continue").is_disabled()
    shot(page, "46-google-wizard-not-an-admin")

    page.get_by_role("link", name="Edit credentials").click()
    page.fill("#connection-admin_email", sandbox.admin_email)  # the stored key is kept
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()
    assert "no change feed" in page.inner_text("#test-result")
    shot(page, "47-google-wizard-test-ok")
    page.click("#continue")

    page.wait_for_url("**/setup/settings")
    page.fill("#filter_org_units", "/Sales")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/setup/mappings")
    page.click("#add-mapping")
    names = page.locator("#mapping-rows tr").last.locator("select[name=source_group] option").all_inner_texts()
    assert len(names) - 1 == len(sandbox.groups)  # the account's groups, after a placeholder
    page.locator("#mapping-rows tr").last.locator("button", has_text="Remove").click()
    page.get_by_role("button", name="Save and continue").click()

    preview_apply_finish(page, in_sales, len(sandbox.groups))
    shot(page, "48-google-dashboard")
