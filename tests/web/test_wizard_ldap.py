"""The Add Directory wizard against a private OpenLDAP slapd on loopback: server URL, bind DN and
password, StartTLS with a CA file (refused first without it), base DN, filters and flavor, tested,
a group picked for a mapping, previewed and applied in the browser, ending on the dashboard."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
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
from sqlalchemy import select
from tests.connectors.ldap_kit import require_slapd

from accessiq.sandbox.ldap import SERVICE_ACCOUNTS, SlapdSandbox, group_dn
from accessiq.services import identity
from accessiq.store.tables import GroupMapping

USER_FILTER = "(objectClass=inetOrgPerson)"


@pytest.fixture
def slapd() -> Iterator[SlapdSandbox]:
    require_slapd()
    sandbox = SlapdSandbox(users=40, groups=8, seed=7, tls=True).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def allowed_endpoints(slapd: SlapdSandbox) -> list[str]:
    # A private server is refused by default: the operator allows exactly this one.
    return ["http://127.0.0.1:*", slapd.url]


def test_ldap_wizard_against_a_private_slapd(page: Any, server: Server, slapd: SlapdSandbox) -> None:
    assert slapd.tls
    shutil.copy(slapd.tls.ca_file, Path(server.data_dir) / "ldap-ca.pem")
    people = slapd.population.people
    active = sum(1 for p in people if p.active and p.email)
    team = max(slapd.population.groups, key=lambda g: len(g.member_users))
    # A group name an attacker chose: markup, quotes and a comma the DN escapes.
    hostile = 'Ops <img src=x onerror=alert(1)>, "R&D"'
    slapd.add_group(hostile, [slapd.population.people[0].username])
    groups = len(slapd.population.groups) + 1
    create_admin(server.store)
    with server.store.transaction() as session:
        identity.create_organization(session, "acme")
    sign_in(page)

    start_wizard(page, "Contoso LDAP", "LDAP")
    page.fill("#connection-url", slapd.url)
    page.fill("#connection-bind_dn", slapd.service_dn())
    page.fill("#connection-bind_password", SERVICE_ACCOUNTS["accessiq"])
    page.check("#connection-start_tls")
    page.fill("#connection-base_dn", slapd.suffix)
    page.fill("#connection-user_filter", USER_FILTER)
    page.select_option("#connection-flavor", "openldap")
    shot(page, "70-ldap-wizard-credentials")
    result = save_and_test(page)
    # StartTLS against a certificate from a private CA, without that CA: refused, and named.
    assert "TLS with" in result and "CA certificate file" in result, result
    assert page.get_by_role("button", name="Continue").is_disabled()
    shot(page, "71-ldap-wizard-tls-refused")

    page.get_by_role("link", name="Edit credentials").click()
    page.fill("#connection-ca_file", "ldap-ca.pem")
    result = save_and_test(page)
    assert "Connection works." in result and "over StartTLS" in result and "syncrepl" in result, result
    shot(page, "72-ldap-wizard-test-ok")
    page.click("#continue")

    # Picked by DN: a name can repeat in other org units. The option says where the group is.
    names = map_one_group(page, "acme", f"{team.name} — ou=Groups,{slapd.suffix}")
    assert len(names) == groups, names
    assert f"{hostile} — ou=Groups,{slapd.suffix}" in names and page.locator("img[src=x]").count() == 0
    shot(page, "73-ldap-wizard-group-picker")
    page.get_by_role("button", name="Save and continue").click()

    page.wait_for_url("**/setup/preview")
    with server.store.transaction() as session:
        assert [m.source_group for m in session.scalars(select(GroupMapping))] == [group_dn(team.name, slapd.suffix)]
    preview_apply_finish(page, active, groups, "74-ldap-wizard-preview")
    shot(page, "75-ldap-dashboard")
