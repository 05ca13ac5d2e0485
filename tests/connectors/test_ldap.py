"""The `ldap` connector against a real slapd: size, nesting, escaping, TLS, check() and injection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap.dn import str2dn

from accessiq.connectors import connector_class
from accessiq.connectors.base import GroupUpserted, ReadStarted, UserUpserted
from accessiq.connectors.ldap import LdapConnector
from accessiq.connectors.ldap_entries import normalize_dn, parsed_normal_dn
from accessiq.connectors.ldap_settings import LdapConnection
from accessiq.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    UnreachableError,
)
from accessiq.sandbox import free_port
from accessiq.sandbox.ldap import SERVICE_ACCOUNTS

from .contract import Mirror
from .ldap_kit import LdapKit, slapd

SUFFIX = "dc=example,dc=com"
ODD_USER_DN = r"cn=Doe\, Jane \2B Co \3CR&D\3E \22Q\22 \3B #1,ou=Sales,ou=People," + SUFFIX
UNICODE_USER_DN = "cn=Zoë Ødegaard-Lindqvist,ou=Sales,ou=People," + SUFFIX
ODD_USER_ID = "0b5c1c1e-0000-4000-8000-000000000001"
UNICODE_USER_ID = "0b5c1c1e-0000-4000-8000-000000000002"
BIG_GROUP_ID = "0b5c1c1e-0000-4000-8000-0000000000b1"
ODD_GROUP_ID = "0b5c1c1e-0000-4000-8000-0000000000b2"
ODD_GROUP_DN = r"cn=Équipe \2A)(uid=\2A été\, R&D,ou=Groups," + SUFFIX


def _person(dn: str, uid: str, cn: str, entry_uuid: str) -> tuple[str, dict[str, list[str]]]:
    return dn, {
        "objectClass": ["top", "inetOrgPerson"],
        "cn": [cn],
        "sn": [cn.split()[-1]],
        "uid": [uid],
        "mail": [f"{uid}@contoso.example"],
        "entryUUID": [entry_uuid],
    }


@pytest.fixture(scope="module")
def big() -> Iterator[LdapKit]:
    """2,100 people, a 2,000-member group, nested groups, and DNs that need escaping."""
    from accessiq.sandbox.ldap import user_dn
    from accessiq.sandbox.people import generate_population

    population = generate_population(2100, 60, seed=11)
    members = [user_dn(p, SUFFIX) for p in population.people[:2000]]
    extra = [
        _person(ODD_USER_DN, "jane.doe", 'Doe, Jane + Co <R&D> "Q" ; #1', ODD_USER_ID),
        _person(UNICODE_USER_DN, "zoe.odegaard", "Zoë Ødegaard-Lindqvist", UNICODE_USER_ID),
        (
            "cn=Everyone Big,ou=Groups," + SUFFIX,
            {
                "objectClass": ["top", "groupOfNames"],
                "cn": ["Everyone Big"],
                "member": members,
                "entryUUID": [BIG_GROUP_ID],
            },
        ),
        (
            ODD_GROUP_DN,
            {
                "objectClass": ["top", "groupOfNames"],
                "cn": ["Équipe *)(uid=* été, R&D"],
                # Spelled differently from the entries' own DNs: matched after normalizing.
                "member": [
                    ODD_USER_DN.upper().replace("DC=EXAMPLE", "dc=example"),
                    UNICODE_USER_DN,
                    "cn=Everyone Big,ou=Groups," + SUFFIX,
                ],
                "entryUUID": [ODD_GROUP_ID],
            },
        ),
    ]
    with slapd(population=population, extra_entries=extra) as kit:
        yield kit


def test_reads_every_user_past_the_server_size_limit(big: LdapKit) -> None:
    events = list(big.connector(page_size=300).read(None))
    users = {e.user.external_id for e in events if isinstance(e, UserUpserted)}
    # slapd's soft limit is 500 entries for an unpaged search; the connector pages.
    assert len(users) == 2102
    assert {p.id for p in big.sandbox.population.people} <= users


def test_a_2000_member_group_and_nested_groups_are_complete(big: LdapKit) -> None:
    mirror = Mirror.of(big.connector().read(None))
    population = big.sandbox.population
    users, groups = mirror.memberships()[BIG_GROUP_ID]
    assert users == {p.id for p in population.people[:2000]} and not groups
    expected = big.expected_memberships()
    for gid, members in expected.items():
        assert mirror.memberships()[gid] == members
    assert any(groups for _, groups in expected.values()), "the seed has nested groups"


def test_dns_and_values_that_need_escaping_and_unicode(big: LdapKit) -> None:
    mirror = Mirror.of(big.connector().read(None))
    odd = mirror.users[ODD_USER_ID]
    assert odd.data["cn"] == 'Doe, Jane + Co <R&D> "Q" ; #1'
    assert odd.org_unit and str2dn(odd.org_unit) == str2dn(ODD_USER_DN)
    assert mirror.users[UNICODE_USER_ID].data["cn"] == "Zoë Ødegaard-Lindqvist"
    group = mirror.groups[ODD_GROUP_ID].group
    assert group.name == "Équipe *)(uid=* été, R&D" and group.dn and str2dn(group.dn) == str2dn(ODD_GROUP_DN)
    assert mirror.memberships()[ODD_GROUP_ID] == (frozenset({ODD_USER_ID, UNICODE_USER_ID}), frozenset({BIG_GROUP_ID}))
    disabled = {p.id for p in big.sandbox.population.people if not p.active}
    assert disabled and {uid for uid, u in mirror.users.items() if not u.active} == disabled


def test_org_units_scope_the_read_and_users_carry_their_dn(big: LdapKit) -> None:
    sales = f"ou=Sales,ou=People,{SUFFIX}"
    mirror = Mirror.of(big.connector(user_base_dns=[sales]).read(None))
    expected = {p.id for p in big.sandbox.population.people if p.department == "Sales"} | {ODD_USER_ID, UNICODE_USER_ID}
    assert set(mirror.users) == expected
    assert all(u.org_unit and u.org_unit.endswith(sales) for u in mirror.users.values())


def test_passwords_never_reach_a_record(big: LdapKit) -> None:
    # The root DN may read userPassword; the connector still leaves it out.
    connector = big.connector(
        bind_dn=big.sandbox.admin_dn, bind_password=big.sandbox.admin_password, user_filter="(objectClass=*)"
    )
    for event in connector.read(None):
        if isinstance(event, UserUpserted):
            assert "userPassword" not in event.user.data


def test_the_provider_describes_itself_and_needs_the_extra() -> None:
    cls = connector_class("ldap")
    assert cls is LdapConnector and cls.requires == ("ldap",)
    assert cls.install_hint and "accessiq[ldap]" in cls.install_hint and "libldap2-dev" in cls.install_hint
    assert LdapConnection.public_endpoints == {"url": ()}
    for name, spec in LdapConnection.model_fields.items():
        assert spec.title and spec.description, name
    assert LdapConnection.secret_fields == ("bind_password",)


# --------------------------------------------------------------------------- settings and injection


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "http://ldap.example.com"),
        ("url", "ldap://ldap.example.com"),  # plain, not loopback, no StartTLS
        ("url", "ldaps://ldap.example.com/dc=example,dc=com"),
        ("base_dn", "example.com"),
        ("user_filter", "(objectClass=*))(|(uid=*"),
        ("user_filter", "uid=*"),
        ("group_filter", "(cn=a)(cn=b)"),
        ("user_base_dns", ["not a dn"]),
    ],
)
def test_settings_refuse_bad_urls_dns_and_filters(field: str, value: object) -> None:
    values: dict[str, object] = {"url": "ldaps://ldap.example.com", "base_dn": SUFFIX, field: value}
    with pytest.raises(ConfigurationError) as caught:
        LdapConnection(**values)  # type: ignore[arg-type]
    assert caught.value.field == f"connection.{field}"


def test_values_from_the_directory_never_widen_a_filter(big: LdapKit) -> None:
    """Ids that reach a filter are escaped: a crafted one matches nothing instead of everything."""
    connector = big.connector()
    assert connector._by_ids({"*"}, groups=False) == []
    assert connector._by_ids({"x)(objectClass=*"}, groups=False) == []
    assert len(connector._by_ids({ODD_USER_ID}, groups=False)) == 1


# --------------------------------------------------------------------------- check()


def test_check_reports_what_it_found(big: LdapKit) -> None:
    result = big.connector().check()
    assert result.ok
    assert "2102 users and 62 groups" in result.details[1]
    assert "syncrepl" in result.details[2]


def test_check_unreachable_host() -> None:
    connector = LdapConnector(LdapConnection(url=f"ldap://127.0.0.1:{free_port()}", base_dn=SUFFIX, timeout=3))
    with pytest.raises(UnreachableError, match="cannot reach the LDAP server"):
        connector.check()


def test_check_bad_credentials(big: LdapKit) -> None:
    with pytest.raises(AuthenticationError, match="invalid credentials"):
        big.connector(bind_password="wrong").check()


def test_check_base_dn_not_found(big: LdapKit) -> None:
    with pytest.raises(ConfigurationError, match="dc=nowhere,dc=com does not exist") as caught:
        big.connector(base_dn="dc=nowhere,dc=com").check()
    assert caught.value.field == "connection.base_dn"


def test_check_no_read_permission_on_users(big: LdapKit) -> None:
    with pytest.raises(PermissionDeniedError, match="lacks read permission on the user entries"):
        big.connector(bind_dn=big.sandbox.service_dn("no-access"), bind_password=SERVICE_ACCOUNTS["no-access"]).check()


def test_check_no_read_permission_on_groups(big: LdapKit) -> None:
    with pytest.raises(PermissionDeniedError, match="lacks read permission on the group entries"):
        big.connector(bind_dn=big.sandbox.service_dn("no-groups"), bind_password=SERVICE_ACCOUNTS["no-groups"]).check()


def test_check_a_filter_that_matches_nothing_is_a_problem_not_a_permission(big: LdapKit) -> None:
    result = big.connector(user_filter="(objectClass=noSuchClass)").check()
    assert not result.ok and "matches the user filter" in result.problems[0]


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls() -> Iterator[LdapKit]:
    with slapd(users=20, groups=5, tls=True) as kit:
        yield kit


def _first_read(connector: LdapConnector) -> int:
    return sum(1 for e in connector.read(None) if isinstance(e, UserUpserted))


def test_start_tls_and_ldaps_with_the_ca_file(tls: LdapKit) -> None:
    assert tls.sandbox.tls and tls.sandbox.ldaps_url
    ca = str(tls.sandbox.tls.ca_file)
    assert _first_read(tls.connector(start_tls=True, ca_file=ca)) == 20
    assert _first_read(tls.connector(url=tls.sandbox.ldaps_url, ca_file=ca)) == 20
    assert "over StartTLS" in tls.connector(start_tls=True, ca_file=ca).check().details[0]


@pytest.mark.parametrize("start_tls", [False, True])
def test_an_untrusted_certificate_is_refused_and_named(tls: LdapKit, start_tls: bool) -> None:
    url = tls.sandbox.url if start_tls else tls.sandbox.ldaps_url
    with pytest.raises(UnreachableError, match=r"TLS with .* failed: .*(self-signed|issuer)"):
        tls.connector(url=url, start_tls=start_tls).check()


def test_a_certificate_for_another_host_is_refused_and_named(tls: LdapKit) -> None:
    assert tls.sandbox.tls and tls.sandbox.ldaps_url
    url = tls.sandbox.ldaps_url.replace("127.0.0.1", "localhost")
    with pytest.raises(UnreachableError, match="does not name this host"):
        tls.connector(url=url, ca_file=str(tls.sandbox.tls.ca_file)).check()


def test_verification_off_is_explicit(tls: LdapKit) -> None:
    assert tls.sandbox.ldaps_url
    assert LdapConnection(url="ldaps://x.example", base_dn=SUFFIX).tls_verify is True
    assert _first_read(tls.connector(url=tls.sandbox.ldaps_url, tls_verify=False)) == 20


# --------------------------------------------------------------------------- change tracking


def test_without_syncrepl_modify_timestamp_polling_reports_changes() -> None:
    with slapd(users=50, groups=5, syncprov=False) as kit:
        _timestamp_polling(kit)


def _timestamp_polling(big: LdapKit) -> None:
    connector = big.connector()
    assert "modifyTimestamp" in connector.check().details[2]
    first = Mirror.of(connector.read(None))
    assert first.cursor and first.cursor["mode"] == "timestamp" and first.cursor["since"]
    unchanged = list(connector.read(first.cursor))
    assert [type(e) for e in unchanged][1:-1] == []
    person = big.sandbox.population.people[5]
    big.sandbox.update_user(person.username, {"title": ["Chief Tester"]})
    events = list(connector.read(first.cursor))
    assert isinstance(events[0], ReadStarted) and not events[0].full and events[0].note
    changed = [e.user for e in events if isinstance(e, UserUpserted)]
    assert [u.external_id for u in changed] == [person.id] and changed[0].data["title"] == "Chief Tester"


def test_a_changed_scope_reads_everything_again(big: LdapKit) -> None:
    cursor = Mirror.of(big.connector().read(None)).cursor
    events = list(big.connector(user_base_dns=[f"ou=Sales,ou=People,{SUFFIX}"]).read(cursor))
    assert isinstance(events[0], ReadStarted) and events[0].full and "settings changed" in (events[0].note or "")
    assert any(isinstance(e, GroupUpserted) for e in events)


_attribute = st.sampled_from(["uid", "CN", "ou", "OU", "dc", "DC", "o", "sAMAccountName", "x-y"])
_value = st.text(alphabet="aAzZ09._@- #+,=\\\"éß", min_size=1, max_size=12)


@given(st.lists(st.tuples(_attribute, _value), min_size=1, max_size=5), st.sampled_from([",", ", ", " ,"]))
def test_a_dn_has_one_spelling_whichever_way_it_is_normalized(rdns: list[tuple[str, str]], comma: str) -> None:
    """Plain DNs take a fast path (their lowercase); it spells them as parsing them would."""
    dn = comma.join(f"{attribute}={value}" for attribute, value in rdns)
    assert normalize_dn(dn) == parsed_normal_dn(dn)
    assert normalize_dn("UID=JDoe,OU=People,DC=Example,DC=org") == "uid=jdoe,ou=people,dc=example,dc=org"
