"""The Add Directory wizard against the Okta sandbox: an org connected with an API token (a revoked
one first), tested, previewed and applied in the browser, ending on the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_steps import Server, create_admin, preview_apply_finish, shot, sign_in

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.okta import OktaSandbox
from accessiq.sandbox.okta_app import create_app


@pytest.fixture
def okta_org() -> Iterator[tuple[OktaSandbox, str]]:
    sandbox = OktaSandbox(60, 8, seed=3)
    with SandboxServer(create_app(sandbox)) as served:
        yield sandbox, served.url


def test_okta_wizard_against_the_okta_sandbox(page: Any, server: Server, okta_org: tuple[OktaSandbox, str]) -> None:
    sandbox, url = okta_org
    statuses = sandbox.snapshot()["users"].values()
    active = sum(1 for status in statuses if status not in ("SUSPENDED", "DEPROVISIONED"))
    groups = sum(1 for g in sandbox.snapshot()["groups"].values() if g["type"] != "BUILT_IN")
    create_admin(server.store)
    sign_in(page)

    page.click("#add-directory")
    page.fill("#name", "Acme Okta")
    page.locator("label.choice", has=page.locator("span.title").get_by_text("Okta", exact=True)).click()
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url("**/directories/new/credentials*")
    # The credentials say which are needed: a token, or a service app's client ID with its key.
    assert page.inner_text("label[for='connection-api_token']") == (
        "API token (this or Service app private key is required)"
    )
    assert page.inner_text("label[for='connection-client_id']") == (
        "Service app client ID (required with Service app private key)"
    )
    page.fill("#connection-org_url", url)
    page.fill("#connection-api_token", "00not-the-token")
    page.get_by_role("button", name="Save and test connection").click()
    page.wait_for_url("**/setup/test")
    result = page.inner_text("#test-result")
    assert "E0000011" in result and "set API token" in result and "api_token" not in result, result
    assert page.get_by_role("button", name="Continue").is_disabled()
    shot(page, "43-okta-wizard-bad-token")

    page.get_by_role("link", name="Edit credentials").click()
    page.fill("#connection-api_token", sandbox.api_token)
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()
    shot(page, "44-okta-wizard-test-ok")
    page.click("#continue")

    page.wait_for_url("**/setup/settings")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/setup/mappings")
    page.click("#add-mapping")
    names = page.locator("#mapping-rows tr").last.locator("select[name=source_group] option").all_inner_texts()
    assert len(names) - 1 == groups  # the org's groups without Everyone, after a placeholder
    page.locator("#mapping-rows tr").last.locator("button", has_text="Remove").click()
    page.get_by_role("button", name="Save and continue").click()

    preview_apply_finish(page, active, groups)
    shot(page, "45-okta-dashboard")
