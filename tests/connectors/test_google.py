"""The Google Workspace connector against the Google sandbox: settings, auth, users, org units, groups, errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from accessiq.connectors.base import ReadStarted, UserUpserted
from accessiq.connectors.google import GROUP_SCOPE, USER_SCOPE, GoogleConnection, GoogleConnector
from accessiq.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    SourceError,
    TransientError,
    UnreachableError,
)
from accessiq.sandbox import free_port
from accessiq.sandbox.google import USER_READ, Fault, GoogleSandbox
from accessiq.services import providers
from accessiq.sync.mapping import CompiledMapping

from .contract import Mirror
from .google_kit import GoogleKit, fresh_google, google_server


@pytest.fixture(scope="module")
def google_server_module() -> Iterator[tuple[GoogleSandbox, str]]:
    with google_server() as server:
        yield server


@pytest.fixture
def google(google_server_module: tuple[GoogleSandbox, str]) -> Iterator[GoogleKit]:
    with fresh_google(google_server_module) as kit:
        yield kit


def users_read(connector: GoogleConnector) -> dict[str, UserUpserted]:
    return {e.user.external_id: e for e in connector.read(None) if isinstance(e, UserUpserted)}


def under(path: str, unit: str) -> bool:
    return path == unit or path.startswith(unit + "/")


# ------------------------------------------------------------------ settings

BAD_PEM = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"


def key_of(google: GoogleKit, **changes: Any) -> str:
    info = google.sandbox.service_account_key(google.token_url)
    info.update(changes)
    return json.dumps({k: v for k, v in info.items() if v is not None})


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda g: "-----BEGIN PRIVATE KEY-----\nMIIE...", "not JSON"),
        (lambda g: "[1, 2]", "not a JSON object"),
        (
            lambda g: json.dumps({"type": "authorized_user", "client_id": "x", "refresh_token": "y"}),
            "'authorized_user'",
        ),
        (lambda g: key_of(g, client_email=None), "lacks client_email"),
        (
            lambda g: key_of(g, private_key="-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"),
            "PEM",
        ),
    ],
    ids=["not-json", "not-object", "not-a-service-account", "missing-field", "bad-pem"],
)
def test_a_malformed_key_is_refused_naming_the_field(google: GoogleKit, key: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        google.settings(service_account=key(google))
    assert refused.value.field == "connection.service_account"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("admin_email", "admin", "not an email address"),
        ("api_url", "https://admin.googleapis.com/admin/directory/v1", "URL alone"),
        ("token_url", "http://oauth2.example.com/token", "https://"),
        ("customer", "my customer", "customer ID"),
    ],
)
def test_bad_connection_fields_are_refused_naming_the_field(
    google: GoogleKit, field: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        google.settings(**{field: value})
    assert refused.value.field == f"connection.{field}"


def test_the_provider_describes_its_fields_and_hides_the_key(google: GoogleKit) -> None:
    provider = providers.get_provider("google")
    assert provider.available and provider.title == "Google Workspace" and provider.sandbox
    fields = {f.name: f for f in provider.fields}
    assert fields["service_account"].kind == "multiline_secret" and fields["service_account"].required
    assert fields["customer"].default == "my_customer" and not fields["customer"].required
    assert fields["api_url"].kind == "url" and fields["token_url"].default == "https://oauth2.googleapis.com/token"
    assert all(f.label and f.help for f in provider.fields)
    settings = google.settings()
    assert "PRIVATE KEY" not in repr(settings)
    assert GoogleConnection.public_origins("api_url").allows("https://admin.googleapis.com/admin/directory/v1/users")
    assert not GoogleConnection.public_origins().allows(google.url)


# ------------------------------------------------------------------ auth


def test_the_token_is_delegated_to_the_admin_with_read_only_scopes_and_reused(google: GoogleKit) -> None:
    connector = google.connector()
    list(connector.read(None))
    tokens = list(google.sandbox.access_tokens.values())
    assert len(tokens) == 1
    assert tokens[0].subject == google.sandbox.admin_email
    assert tokens[0].scopes == {USER_SCOPE, GROUP_SCOPE}
    token_posts = [r for r in google.sandbox.requests if r.path == "/token"]
    assert len(token_posts) == 1  # one token for every page and every member-pool thread


def test_a_token_the_api_refuses_is_renewed_once(google: GoogleKit) -> None:
    connector = google.connector()
    connector.check()
    google.sandbox.access_tokens.clear()  # the token was revoked or expired early
    assert users_read(connector)
    assert len([r for r in google.sandbox.requests if r.path == "/token"]) == 2


# ------------------------------------------------------------------ users


def test_users_page_by_token_with_500_asked_and_the_basic_projection(google: GoogleKit) -> None:
    users = users_read(google.connector())
    assert set(users) == set(google.sandbox.users)
    pages = google.queries("users")
    assert len(pages) > 2  # the test sandbox serves 7 per page
    assert all(q["maxResults"] == ["500"] and q["customer"] == ["my_customer"] for q in pages)
    assert all(q["projection"] == ["basic"] for q in pages)
    assert "pageToken" not in pages[0] and all("pageToken" in q for q in pages[1:])
    assert not any("customSchemas" in e.user.data for e in users.values())


def test_custom_schemas_are_read_with_projection_full_only_when_mapped(google: GoogleKit) -> None:
    users = users_read(google.connector(fields=("customSchemas", "primaryEmail")))
    assert all(q["projection"] == ["full"] for q in google.queries("users"))
    mapping = CompiledMapping.build({}, {"employee": "customSchemas.EmploymentData.employeeNumber"})
    sample = next(iter(users.values())).user
    assert mapping.apply(sample.data)["employee"].startswith("E")


def test_primary_entries_of_multi_valued_fields_are_mapped_by_path(google: GoogleKit) -> None:
    users = users_read(google.connector())
    mapping = CompiledMapping.build(
        GoogleConnector.default_mapping,
        {"department": "organizations[primary].department", "title": "organizations[primary].title"},
    )
    for uid, event in users.items():
        mapped = mapping.apply(event.user.data)
        record = google.sandbox.users[uid]
        assert mapped["department"] == record["organizations"][0]["department"]
        assert mapped["email"] == record["primaryEmail"] and mapped["given_name"] == record["name"]["givenName"]


def test_a_page_token_that_repeats_is_an_error_not_a_loop(google: GoogleKit) -> None:
    google.sandbox.behaviour.repeat_token = True
    with pytest.raises(SourceError, match="same pageToken twice"):
        list(google.connector().read(None))


def test_suspended_and_archived_users_are_inactive(google: GoogleKit) -> None:
    users = users_read(google.connector())
    records = google.sandbox.users
    suspended = [uid for uid, u in records.items() if u["suspended"]]
    archived = [uid for uid, u in records.items() if u["archived"]]
    assert suspended and archived
    for uid, event in users.items():
        assert event.user.active is not (records[uid]["suspended"] or records[uid]["archived"])


# ------------------------------------------------------------------ org units


def test_an_org_unit_filter_reads_the_unit_and_its_sub_units_but_not_a_sibling_with_the_same_prefix(
    google: GoogleKit,
) -> None:
    sandbox = google.sandbox
    assert any(u["orgUnitPath"] == "/Salesforce Admins" for u in sandbox.users.values())
    assert any(u["orgUnitPath"].startswith("/Sales/") for u in sandbox.users.values())
    users = users_read(google.connector(org_units=("/Sales",)))
    expected = {uid for uid, u in sandbox.users.items() if under(u["orgUnitPath"], "/Sales")}
    assert set(users) == expected
    assert {e.user.org_unit for e in users.values()} > {"/Sales/EMEA Sales"}
    assert all(q["query"] == ["orgUnitPath='/Sales'"] for q in google.queries("users"))


def test_a_looser_server_cannot_bring_a_prefix_sibling_into_scope(google: GoogleKit) -> None:
    google.sandbox.behaviour.ou_prefix_match = True  # answers /Salesforce Admins to orgUnitPath='/Sales'
    users = users_read(google.connector(org_units=("/Sales",)))
    assert users and all(under(e.user.org_unit or "", "/Sales") for e in users.values())


def test_a_user_who_moves_in_the_list_while_it_pages_is_reported_once(google: GoogleKit) -> None:
    events = google.connector().read(None)
    assert isinstance(next(events), ReadStarted)
    first = next(events)
    assert isinstance(first, UserUpserted)
    # Renamed between pages: users.list (ordered by email) serves them again on the last page.
    google.sandbox.update_user(first.user.external_id, {"primaryEmail": "zzz.renamed@contoso.example"})
    ids = [first.user.external_id] + [e.user.external_id for e in events if isinstance(e, UserUpserted)]
    assert sorted(ids) == sorted(google.sandbox.users)


def test_one_query_per_org_unit_with_quotes_escaped_and_users_deduplicated(google: GoogleKit) -> None:
    sandbox = google.sandbox
    sandbox.add_org_unit("/Bob's Team")
    moved = sorted(uid for uid, u in sandbox.users.items() if u["orgUnitPath"].startswith("/Engineering"))[:2]
    for uid in moved:
        sandbox.move_user(uid, "/Bob's Team")
    units = ("/Sales/EMEA Sales", "/Sales", "/Bob's Team/")
    events = [e for e in google.connector(org_units=units).read(None) if isinstance(e, UserUpserted)]
    ids = [e.user.external_id for e in events]
    assert len(ids) == len(set(ids))
    wanted = {uid for uid, u in sandbox.users.items() if under(u["orgUnitPath"], "/Sales")} | set(moved)
    assert set(ids) == wanted
    # /Sales/EMEA Sales is inside /Sales: not asked for again.
    assert sorted({q["query"][0] for q in google.queries("users")}) == [
        "orgUnitPath='/Bob\\'s Team'",
        "orgUnitPath='/Sales'",
    ]


def test_an_unknown_org_unit_is_a_setting_error_naming_it(google: GoogleKit) -> None:
    connector = google.connector(org_units=("/Sales", "/Nowhere"))
    with pytest.raises(ConfigurationError, match="/Nowhere") as refused:
        connector.check()
    assert refused.value.field == "settings.user_filter.org_units"


def test_the_read_is_full_every_time_and_says_so(google: GoogleKit) -> None:
    connector = google.connector(org_units=("/Sales",))
    first = list(connector.read(None))
    again = list(connector.read({"anything": 1}))
    for events in (first, again):
        assert isinstance(events[0], ReadStarted) and events[0].full
        assert events[0].note and "no change feed" in events[0].note and "/Sales" in events[0].note


# ------------------------------------------------------------------ groups


def test_customer_members_stand_for_every_user_read(google: GoogleKit) -> None:
    sandbox = google.sandbox
    everyone = sandbox.everyone_id
    mirror = Mirror.of(google.connector().read(None))
    assert mirror.members[everyone][0] == set(sandbox.users)
    scoped = Mirror.of(google.connector(org_units=("/Sales",)).read(None))
    assert scoped.members[everyone][0] == set(scoped.users) and scoped.users


def test_nested_groups_are_group_members_and_user_members_stay_within_the_read(google: GoogleKit) -> None:
    sandbox = google.sandbox
    mirror = Mirror.of(google.connector(org_units=("/Engineering",)).read(None))
    nested = {gid: groups for gid, (_, groups) in mirror.members.items() if groups}
    assert nested
    for gid, groups in nested.items():
        assert groups == {m for m, v in sandbox.members[gid].items() if v.type == "GROUP"}
    for users, _ in mirror.members.values():
        assert users <= set(mirror.users)
    all_staff = sandbox.ids[sandbox.population.groups[0].id]
    assert mirror.groups[all_staff].group.email == sandbox.groups[all_staff]["email"]


def test_member_lists_are_read_concurrently_within_the_bound(google: GoogleKit) -> None:
    sandbox = google.sandbox
    groups = len(sandbox.groups)
    sandbox.inject(Fault(kind="delay", delay=0.2, count=groups, path_contains="/members"))
    connector = GoogleConnector(google.settings(), http=google.http_options(), member_workers=4)
    google.connectors.append(connector)
    sandbox.reset_stats()
    started = time.perf_counter()
    list(connector.read(None))
    elapsed = time.perf_counter() - started
    assert sandbox.max_in_flight == 4
    assert elapsed < 0.2 * groups / 2  # sequentially it would take 0.2 s per group


def test_a_group_deleted_while_its_members_are_read_is_left_out(google: GoogleKit) -> None:
    gid = sorted(google.sandbox.groups)[3]
    google.sandbox.inject(Fault(kind="error", status=404, path_contains=f"/groups/{gid}/members"))
    mirror = Mirror.of(google.connector().read(None))
    assert gid not in mirror.groups and len(mirror.groups) == len(google.sandbox.groups) - 1


def test_list_groups_reads_no_members(google: GoogleKit) -> None:
    listed = list(google.connector().list_groups())
    assert {g.external_id for g in listed} == set(google.sandbox.groups)
    assert not [r for r in google.sandbox.requests if r.path.endswith("/members")]


# ------------------------------------------------------------------ quota, retries


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault(kind="quota", reason="userRateLimitExceeded", count=2), 403),
        (Fault(kind="quota", reason="quotaExceeded", count=2), 403),
        (Fault(kind="quota", reason="rateLimitExceeded", count=2), 429),
        (Fault(kind="error", status=503, count=2), 503),
    ],
    ids=["userRateLimitExceeded", "quotaExceeded", "rateLimitExceeded", "backendError"],
)
def test_quota_and_server_errors_are_retried_with_exponential_backoff(
    google: GoogleKit, fault: Fault, status: int
) -> None:
    google.sandbox.inject(fault)
    users = users_read(google.connector())
    assert set(users) == set(google.sandbox.users)
    assert [r.status for r in google.sandbox.requests if r.path.endswith("/users")][:3] == [status, status, 200]
    # Equal jitter at 0.5 of a ceiling that doubles: 0.5 * 2**n * 0.75.
    assert google.sleeps == [0.375, 0.75]


def test_jitter_spreads_the_backoff(google: GoogleKit) -> None:
    google.sandbox.inject(Fault(kind="quota", count=2))
    draws = iter([0.0, 1.0])
    connector = google.connector(http=google.http_options(jitter=lambda: next(draws)))
    users_read(connector)
    assert google.sleeps == [0.25, 1.0]


def test_quota_that_does_not_recover_fails_as_transient(google: GoogleKit) -> None:
    google.sandbox.inject(Fault(kind="quota", reason="userRateLimitExceeded", count=10))
    with pytest.raises(TransientError, match="userRateLimitExceeded") as failed:
        list(google.connector().read(None))
    assert "quota" in (failed.value.hint or "")


def test_a_forbidden_answer_that_is_not_quota_is_not_retried(google: GoogleKit) -> None:
    google.sandbox.set_admin(google.sandbox.admin_email, [])
    with pytest.raises(PermissionDeniedError):
        list(google.connector().read(None))
    assert google.sleeps == []


# ------------------------------------------------------------------ check: each failure told apart


def test_check_reports_what_it_verified(google: GoogleKit) -> None:
    result = google.connector(org_units=("/Sales",)).check()
    assert result.ok
    text = "\n".join(result.details)
    assert google.sandbox.admin_email in text and "org unit /Sales: has users" in text
    assert "groups and group members readable" in text


def test_check_without_delegation_names_the_client_id_and_scopes(google: GoogleKit) -> None:
    google.sandbox.set_delegation(None)
    with pytest.raises(PermissionDeniedError, match="no domain-wide delegation") as failed:
        google.connector().check()
    assert google.sandbox.client_id in (failed.value.hint or "") and USER_SCOPE in (failed.value.hint or "")


def test_check_with_a_scope_not_authorised_names_the_missing_scope(google: GoogleKit) -> None:
    google.sandbox.set_delegation([USER_READ])
    with pytest.raises(PermissionDeniedError, match="does not authorise the scope") as failed:
        google.connector().check()
    message = failed.value.args[0]
    assert GROUP_SCOPE in message and USER_SCOPE not in message


def test_check_with_an_unknown_admin_email(google: GoogleKit) -> None:
    with pytest.raises(AuthenticationError, match=r"knows no user 'ghost@contoso\.example'") as failed:
        google.connector(admin_email="ghost@contoso.example").check()
    assert "connection.admin_email" in (failed.value.hint or "")


def test_check_with_an_admin_email_that_is_not_an_admin(google: GoogleKit) -> None:
    regular = sorted(u["primaryEmail"] for u in google.sandbox.users.values() if not u["isAdmin"])[0]
    with pytest.raises(PermissionDeniedError, match=f"{regular} may not read users") as failed:
        google.connector(admin_email=regular).check()
    assert "super admin" in (failed.value.hint or "")


def test_check_with_an_admin_who_may_read_users_but_not_groups(google: GoogleKit) -> None:
    google.sandbox.set_admin(google.sandbox.admin_email, ["users"])
    with pytest.raises(PermissionDeniedError, match="may not read groups"):
        google.connector().check()


def test_check_with_a_deleted_key(google: GoogleKit) -> None:
    google.sandbox.revoke_key()
    with pytest.raises(AuthenticationError, match="deleted or disabled"):
        google.connector().check()


def test_check_with_an_unknown_customer(google: GoogleKit) -> None:
    with pytest.raises(ConfigurationError) as failed:
        google.connector(customer="C0nothere").check()
    assert failed.value.field == "connection.customer"


@pytest.mark.parametrize("endpoint", ["api_url", "token_url"])
def test_check_with_an_unreachable_endpoint(google: GoogleKit, endpoint: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    url = dead if endpoint == "api_url" else f"{dead}/token"
    with pytest.raises(UnreachableError, match=r"127\.0\.0\.1"):
        google.connector(**{endpoint: url}).check()
