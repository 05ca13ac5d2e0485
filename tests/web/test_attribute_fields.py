"""The attribute-mapping page of an Entra ID directory: its examples work as written, a field Graph
does not have is shown in the live preview and refused on save, and a saved mapping syncs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_steps import Server, create_admin, entra_directory, shot, sign_in

from accessiq.sandbox import SandboxServer
from accessiq.sandbox.entra import EntraSandbox, create_app
from accessiq.services import directories as dirs
from accessiq.services import runs


@pytest.fixture
def graph() -> Iterator[tuple[EntraSandbox, str]]:
    sandbox = EntraSandbox(12, 3, seed=5)
    with SandboxServer(create_app(sandbox)) as served:
        yield sandbox, served.url


def test_entra_mapping_examples_work_and_an_unknown_field_is_shown_and_refused(
    page: Any, server: Server, graph: tuple[EntraSandbox, str]
) -> None:
    from playwright.sync_api import expect  # the browser fixture checks that it is installed

    sandbox, url = graph
    directory = entra_directory(server.store, sandbox, url)
    create_admin(server.store)
    sign_in(page)
    page.goto(f"/directories/{directory}/attributes")
    page.locator("[data-sample-head]").first.wait_for()

    help_text = page.inner_text("#mapping-help")
    assert "{{ givenName }} {{ surname }}" in help_text and "given_name" not in help_text
    examples = page.locator("#mapping-help [data-example]").all_inner_texts()
    assert len(examples) == 4
    # Every example, typed in as the page shows it, previews without an error.
    for i, example in enumerate(examples):
        page.click("#add-attribute")
        row = page.locator("#attribute-rows tr").last
        row.locator("input[name=target]").fill(f"example{i}")
        row.locator("input[name=source]").fill(example)
    expect(page.locator("[data-attr=example3]").first).to_be_visible()
    assert page.locator("#preview .notice.error").count() == 0
    first = page.locator("[data-sample-head]").first.get_attribute("data-sample-head")
    person = sandbox.snapshot()["users"][first]
    expect(page.locator(f"[data-sample='{first}'] [data-attr=example2]")).to_have_text(
        f"{person['givenName']} {person['surname']}"
    )
    # The preview reads the fields of the mapping being edited, before any sync selected them.
    expect(page.locator(f"[data-sample='{first}'] [data-attr=example0]")).to_have_text(person["department"])
    shot(page, "62-entra-attribute-mapping-examples")

    display = page.locator("input[aria-label='Source for display_name']")
    display.fill("{{ givenName ")
    expect(page.locator("#preview .notice.error")).to_contain_text("template does not parse")
    display.fill("{{ given_name }} {{ family_name }}")
    preview_error = page.locator("#preview .notice.error")
    expect(preview_error).to_contain_text("Microsoft Entra ID users have no field given_name (did you mean givenName?)")
    shot(page, "63-entra-attribute-mapping-unknown-field-preview")
    page.click("#save-mapping")
    expect(page.locator(".card .notice.error").first).to_contain_text(
        "Attribute mapping of display_name: Microsoft Entra ID users have no field given_name"
    )
    shot(page, "64-entra-attribute-mapping-unknown-field-refused")
    with server.store.transaction() as session:
        assert dirs.get_directory(session, directory).settings.get("attribute_mapping", {}) == {}

    page.locator("input[aria-label='Source for display_name']").fill("{{ givenName }} {{ surname }}")
    page.click("#save-mapping")
    page.get_by_text("Attribute mapping saved.").wait_for()
    with server.store.transaction() as session:
        run, _ = runs.request_sync(session, dirs.get_directory(session, directory))
        run_id = run.id
    assert runs.run_now(server.store, run_id).status == "succeeded"

    # After the sync the preview shows users from the store, and reads afresh a field it did not select.
    page.goto(f"/directories/{directory}/attributes")
    page.locator("[data-sample-head]").first.wait_for()
    page.click("#add-attribute")
    row = page.locator("#attribute-rows tr").last
    row.locator("input[name=target]").fill("office")
    row.locator("input[name=source]").fill("officeLocation")
    first = page.locator("[data-sample-head]").first.get_attribute("data-sample-head")
    expect(page.locator(f"[data-sample='{first}'] [data-attr=office]")).to_have_text(
        sandbox.snapshot()["users"][first]["officeLocation"]
    )
