"""The Add Directory wizard against a real Samba AD domain controller on 127.0.0.1:389: flavor
active_directory, an org unit as the base DN, tested, a group picked by DN, previewed and applied."""

from __future__ import annotations

from typing import Any

import pytest
from browser_steps import (
    Server,
    create_admin,
    map_one_group,
    preview_apply_finish,
    save_and_test,
    shot,
    sign_in,
    start_wizard,
)
from tests.connectors.ad_kit import ADMIN, ADMIN_PASSWORD, URL, AdKit

from accessiq.services import identity

pytestmark = pytest.mark.xdist_group("samba-ad")


@pytest.fixture
def allowed_endpoints() -> list[str]:
    # A private server is refused by default: the operator allows exactly the DC.
    return ["http://127.0.0.1:*", URL]


def test_active_directory_wizard_against_a_samba_dc(page: Any, server: Server, ad: AdKit) -> None:
    active = sum(ad.user_states().values())
    create_admin(server.store)
    with server.store.transaction() as session:
        identity.create_organization(session, "acme")
    sign_in(page)

    start_wizard(page, "Contoso AD", "LDAP")
    page.fill("#connection-url", URL)
    page.fill("#connection-bind_dn", ADMIN)
    page.fill("#connection-bind_password", ADMIN_PASSWORD)
    page.fill("#connection-base_dn", ad.base)
    page.select_option("#connection-flavor", "active_directory")
    result = save_and_test(page)
    assert "Connection works." in result, result
    assert f"{len(ad.users)} users and {len(ad.groups)} groups readable" in result
    assert "uSNChanged" in result
    shot(page, "76-ad-wizard-test-ok")
    page.click("#continue")

    names = map_one_group(page, "acme", f"Team 0 — OU=Groups,{ad.base}")
    assert len(names) == len(ad.groups), names
    page.get_by_role("button", name="Save and continue").click()
    preview_apply_finish(page, active, len(ad.groups), "77-ad-wizard-preview")
    shot(page, "78-ad-dashboard")
