"""The Add Directory wizard against the Microsoft Graph sandbox: an Entra ID tenant connected,
tested (a wrong secret first), previewed and applied in the browser, ending on the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_steps import Server, create_admin, preview_apply_finish, shot, sign_in

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app


@pytest.fixture
def graph() -> Iterator[tuple[EntraSandbox, str]]:
    sandbox = EntraSandbox(60, 8, seed=3)
    with SandboxServer(create_app(sandbox)) as served:
        yield sandbox, served.url


def test_entra_wizard_against_the_graph_sandbox(page: Any, server: Server, graph: tuple[EntraSandbox, str]) -> None:
    sandbox, url = graph
    enabled = sum(1 for user in sandbox.snapshot()["users"].values() if user["accountEnabled"])
    create_admin(server.store)
    sign_in(page)

    page.click("#add-directory")
    page.fill("#name", "Contoso")
    page.locator("label.choice", has_text="Microsoft Entra ID").click()
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url("**/directories/new/credentials*")
    page.fill("#connection-tenant_id", sandbox.tenant_domain)
    page.fill("#connection-client_id", sandbox.client_id)
    page.fill("#connection-client_secret", "not-the-secret")
    page.fill("#connection-authority_url", url)
    page.fill("#connection-graph_url", url)
    page.get_by_role("button", name="Save and test connection").click()
    page.wait_for_url("**/setup/test")
    result = page.inner_text("#test-result")
    assert "Client secret" in result and "AADSTS7000215" in result, result
    assert "client_secret" not in result, "the form's label, not the document key"
    assert page.get_by_role("button", name="Continue").is_disabled()
    shot(page, "40-entra-wizard-bad-secret")

    page.get_by_role("link", name="Edit credentials").click()
    page.fill("#connection-client_secret", sandbox.client_secret)
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()
    shot(page, "41-entra-wizard-test-ok")
    page.click("#continue")

    page.wait_for_url("**/setup/settings")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/setup/mappings")
    page.click("#add-mapping")
    names = page.locator("#mapping-rows tr").last.locator("select[name=source_group] option").all_inner_texts()
    assert len(names) - 1 == len(sandbox.snapshot()["groups"])  # the tenant's real groups, after a placeholder
    page.locator("#mapping-rows tr").last.locator("button", has_text="Remove").click()
    page.get_by_role("button", name="Save and continue").click()

    preview_apply_finish(page, enabled, len(sandbox.snapshot()["groups"]))
    shot(page, "42-entra-dashboard")
