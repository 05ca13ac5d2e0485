"""Why an administrator's user holds a role: the user page explains each membership (default organization,
group mapping through nested groups, by hand), and group and organization pages list members the same way."""

from __future__ import annotations

from typing import Any

from browser_steps import Server, create_admin, shot, sign_in

from accessiq.services import directories as dirs
from accessiq.services import identity, runs
from accessiq.services.input_policy import InputPolicy
from accessiq.sync.document import validate_document

# Directory data is hostile: a group name that would be an element if it rendered as markup.
PLATFORM = 'Platform <img src="/x" id="injected">'


def nested_company(server: Server, snapshot: Any) -> None:
    """Acme HR: nia is only in Platform, which Engineering nests; Engineering maps to acme-eng as admin."""
    snapshot.user("nia", "nia@example.com", given_name="Nia", family_name="Okafor", display_name="Nia Okafor")
    snapshot.user("bob", "bob@example.com", display_name="Bob Stone")
    snapshot.user("sam", "sam@example.com", display_name="Sam Reyes")
    snapshot.group("g-eng", "Engineering", members=["bob", "g-platform"])
    snapshot.group("g-platform", PLATFORM, members=["nia"])
    snapshot.group("g-sales", "Sales", members=["sam"])
    snapshot.write()
    with server.store.transaction() as session:
        identity.create_organization(session, "acme", "Acme")
        identity.create_organization(session, "acme-eng", "Acme Engineering")
        dirs.apply_document(
            session,
            server.store.secrets,
            validate_document(
                {
                    "name": "Acme HR",
                    "provider": "file",
                    "connection": {"path": str(snapshot.path)},
                    "settings": {"default_organization": "acme", "safety": {"max_deactivation_percent": 100}},
                    "group_mappings": [{"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}],
                }
            ),
            policy=InputPolicy.operator(),
        )
    sync(server)
    with server.store.transaction() as session:
        sam, owner = identity.get_user(session, "sam@example.com"), identity.get_role(session, "owner")
        identity.add_member(session, identity.get_organization(session, "acme"), sam, owner)


def sync(server: Server) -> None:
    with server.store.transaction() as session:
        run, _ = runs.request_sync(session, dirs.get_directory(session, "Acme HR"))
        run_id = run.id
    runs.run_now(server.store, run_id)


def test_user_page_explains_the_effective_role_through_nested_groups(page: Any, server: Server, snapshot: Any) -> None:
    from playwright.sync_api import expect

    nested_company(server, snapshot)
    create_admin(server.store)
    sign_in(page)
    page.goto("/users?q=nia")
    page.get_by_role("link", name="Nia Okafor").click()

    eng = page.locator("tr[data-org=acme-eng]")
    expect(eng.locator("[data-effective-role]")).to_have_text("admin")
    expect(eng).to_contain_text("Mapping Engineering → acme-eng (admin) of Acme HR")
    expect(eng.locator(".group-path")).to_have_text(f"Engineering ⊃ {PLATFORM} ⊃ nia@example.com")
    acme = page.locator("tr[data-org=acme]")
    expect(acme.locator("[data-effective-role]")).to_have_text("member")
    expect(acme).to_contain_text("Default organization of directory Acme HR")
    assert "group-mapping:" not in page.inner_text("main") and "directory-default:" not in page.inner_text("main")
    assert page.locator("#injected").count() == 0
    shot(page, "40-user-why-admin-through-nested-groups")

    # The path's groups are pages of their own, listing members with the path that holds them.
    eng.get_by_role("link", name=PLATFORM).click()
    expect(page.locator("h1")).to_have_text(PLATFORM)
    expect(page.locator("tr[data-user='nia@example.com']")).to_contain_text("directly")
    expect(page.locator("#grants")).to_contain_text("acme-eng as admin: mapping Engineering → acme-eng (admin)")
    expect(page.locator("#grants .group-path")).to_have_text(f"Engineering ⊃ {PLATFORM}")
    expect(page.locator("#nesting dd").first).to_have_text("Engineering")
    assert page.locator("#injected").count() == 0
    shot(page, "41-group-page-nested")

    page.locator("#nesting").get_by_role("link", name="Engineering").click()
    expect(page.locator("h1")).to_have_text("Engineering")
    expect(page.locator("tr[data-user='nia@example.com'] .group-path")).to_have_text(
        f"Engineering ⊃ {PLATFORM} ⊃ nia@example.com"
    )
    expect(page.locator("tr[data-user='bob@example.com']")).to_contain_text("directly")
    shot(page, "42-group-page-mapped")

    # The organization page: what grants roles there, and each member's effective role and why.
    page.goto("/users?q=nia")
    page.get_by_role("link", name="Nia Okafor").click()
    page.locator("tr[data-org=acme-eng]").get_by_role("link", name="acme-eng").click()
    expect(page.locator("h1")).to_have_text("Acme Engineering")
    expect(page.locator("#sources")).to_contain_text("Mapping Engineering → acme-eng (admin) of Acme HR")
    nia = page.locator("#members tr[data-user='nia@example.com']")
    expect(nia.locator("[data-effective-role]")).to_have_text("admin")
    expect(nia.locator(".group-path")).to_have_text(f"Engineering ⊃ {PLATFORM} ⊃ nia@example.com")
    expect(page.locator("#members tr[data-user='bob@example.com'] .group-path")).to_have_text(
        "Engineering ⊃ bob@example.com"
    )
    assert page.locator("#members tr[data-user='sam@example.com']").count() == 0
    shot(page, "43-organization-page")


def test_organization_page_shows_a_manual_grant_outranking_the_default(
    page: Any, server: Server, snapshot: Any
) -> None:
    from playwright.sync_api import expect

    nested_company(server, snapshot)
    create_admin(server.store)
    sign_in(page)
    page.goto("/organizations")
    page.get_by_role("link", name="Acme", exact=True).click()
    page.wait_for_url("**/organizations/acme")
    sam = page.locator("#members tr[data-user='sam@example.com']")
    expect(sam.locator("[data-effective-role]")).to_have_text("owner")
    expect(sam.locator("li[data-origin=manual]")).to_contain_text("Granted by hand")
    expect(sam.locator("li[data-origin^=directory-default]")).to_contain_text(
        "Default organization of directory Acme HR"
    )
    expect(page.locator("#sources")).to_contain_text("Granted by hand")
    shot(page, "44-organization-page-manual-grant")

    page.goto("/users")
    expect(page.locator("a.pill", has_text="acme: owner")).to_have_attribute("href", "/organizations/acme")
    shot(page, "45-users-effective-roles")
    page.goto("/organizations")
    shot(page, "46-organizations-linked")
    page.goto("/groups")
    shot(page, "47-groups-linked")
    page.get_by_role("link", name="Sales").click()
    expect(page.locator("#grants")).to_contain_text("No group mapping of Acme HR reaches this group")
    assert page.get_by_text("404").count() == 0


def test_activating_a_user_the_directory_disabled_warns_first(page: Any, server: Server, snapshot: Any) -> None:
    from playwright.sync_api import expect

    nested_company(server, snapshot)
    snapshot.find("bob")["active"] = False
    snapshot.write()
    sync(server)
    create_admin(server.store)
    sign_in(page)
    page.goto("/users?q=bob")
    page.get_by_role("link", name="Bob Stone").click()

    warning = (
        "bob@example.com is disabled in Acme HR, so the next sync of Acme HR will deactivate them again. "
        "To keep them active, enable them in Acme HR first, or set the deactivation setting of Acme HR to ignore."
    )
    expect(page.locator("#reactivation-warning")).to_contain_text(warning)
    shot(page, "48-activate-disabled-user-warning")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Activate").click()
    expect(page.locator(".notice.warn[role=status]")).to_have_text(
        "bob@example.com is active, but only until the next sync: see below."
    )
    assert asked == [f"Activate bob@example.com? {warning}"]
    expect(page.locator("#reactivation-warning .title")).to_have_text("The next sync will deactivate this user again")
    expect(page.locator("#reactivation-warning")).to_contain_text(warning)
    shot(page, "49-activated-disabled-user-note")

    # Someone the directory still has enabled is activated without a warning.
    page.goto("/users?q=nia")
    page.get_by_role("link", name="Nia Okafor").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Deactivate").click()
    page.get_by_text("Sync will not reactivate this user.").wait_for()
    expect(page.locator("#reactivation-warning")).to_have_count(0)
    page.get_by_role("button", name="Activate").click()
    expect(page.locator(".notice.success[role=status]")).to_have_text("nia@example.com is active.")
