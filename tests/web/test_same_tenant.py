"""Connecting a tenant that another directory already syncs: the wizard's connection test warns, naming
that directory, before a preview full of identical errors; the errors name directories by name."""

from __future__ import annotations

import shutil
from typing import Any

from browser_steps import (
    Server,
    company,
    connected_directory,
    create_admin,
    file_directory,
    shot,
    sign_in,
    start_wizard,
)

from accessiq.services import configure
from accessiq.services import directories as dirs


def test_the_connection_test_warns_about_a_tenant_another_directory_syncs(
    page: Any, server: Server, snapshot: Any
) -> None:
    connected_directory(server.store, snapshot)  # "Acme HR" syncs the snapshot
    copy = shutil.copy(snapshot.path, snapshot.path.with_name("export-of-the-same-people.json"))
    create_admin(server.store)
    sign_in(page)

    # Another file with the same people: the source's user ids are Acme HR's.
    start_wizard(page, "Acme again", "JSON snapshot file")
    page.fill("#connection-path", str(copy))
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()
    warning = page.inner_text("#same-source")
    assert "Acme HR already syncs this tenant" in warning, warning
    assert "5 of the first 5 users read here are already its users" in warning, warning
    assert page.locator("#same-source a", has_text="Acme HR").get_attribute("href") == "/directories/1"
    assert page.inner_text("#continue") == "Continue anyway"
    shot(page, "65-wizard-test-same-tenant")

    # Going on anyway: the preview's errors name the directory, not a row id.
    page.click("#continue")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/setup/mappings")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url("**/setup/preview")
    page.click("#run-preview")
    page.locator(".notice.error", has_text="errors").wait_for()
    errors = page.inner_text(".notice.error")
    assert "belongs to a user of directory 'Acme HR'" in errors, errors
    assert "(id " not in errors

    # The very same file: the same tenant by its connection, whatever the users.
    page.goto("/directories/2/setup/credentials")
    page.fill("#connection-path", str(snapshot.path))
    page.get_by_role("button", name="Save and test connection").click()
    page.get_by_text("Connection works.").wait_for()
    assert f"it connects the same tenant (path {str(snapshot.path).casefold()})" in page.inner_text("#same-source")


def test_a_directory_of_its_own_tenant_gets_no_warning(page: Any, server: Server, snapshot: Any) -> None:
    directory = connected_directory(server.store, snapshot)
    create_admin(server.store)
    sign_in(page)
    page.goto(f"/directories/{directory}/connection")
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connection works.").wait_for()
    assert page.locator("#same-source").count() == 0
    with server.store.transaction() as session:
        assert dirs.get_directory(session, directory).name == "Acme HR"
    assert configure.check_connection(server.store, directory)["same_source"] == []


def test_a_hostile_directory_name_in_the_warning_is_text(page: Any, server: Server, snapshot: Any) -> None:
    path = company(snapshot)
    hostile = '<img src=x onerror="document.title=1"> HR'
    file_directory(server.store, hostile, path)
    second = file_directory(server.store, "Second", path)
    create_admin(server.store)
    sign_in(page)
    page.goto(f"/directories/{second}/setup/test")
    page.get_by_text("Connection works.").wait_for()
    assert f"{hostile} already syncs this tenant" in page.inner_text("#same-source")
    assert page.locator("#same-source img").count() == 0
