"""The Entra ID connector against the Graph sandbox: settings, delta rounds, retries and every error case."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import unquote

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from accessiq.connectors.base import (
    GroupRemoved,
    GroupUpserted,
    ReadFinished,
    ReadStarted,
    SourceEvent,
    UserRemoved,
    UserUpserted,
)
from accessiq.connectors.entra import EntraConnection, EntraConnector
from accessiq.connectors.http import HttpOptions, RetryPolicy
from accessiq.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    TransientError,
    UnreachableError,
)
from accessiq.sandbox import free_port
from accessiq.sandbox.entra import Fault, make_certificate

from .contract import Mirror
from .graph_kit import TEST_DEPARTED, GraphKit

SETTINGS = {
    "tenant_id": "contoso.onmicrosoft.com",
    "client_id": "00000000-0000-0000-0000-000000000001",
    "client_secret": "s3cret",
}


def kinds(events: list[SourceEvent]) -> Counter[str]:
    return Counter(type(e).__name__ for e in events)


def graph_requests(graph: GraphKit) -> list[str]:
    return [f"{r.method} {r.path}" for r in graph.sandbox.requests]


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("field", ["authority_url", "graph_url"])
def test_plain_http_is_refused_except_on_loopback(field: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        EntraConnection.model_validate({**SETTINGS, field: "http://graph.contoso.example"})
    assert refused.value.field == f"connection.{field}"
    assert "https://" in refused.value.message
    for host in ("127.0.0.1:8741", "localhost", "[::1]:9000"):
        assert (
            getattr(EntraConnection.model_validate({**SETTINGS, field: f"http://{host}"}), field)
            == f"http://{host}"
        )


def test_endpoints_default_to_the_global_cloud_and_take_national_ones() -> None:
    settings = EntraConnection.model_validate(SETTINGS)
    assert settings.authority_url == "https://login.microsoftonline.com"
    assert settings.graph_url == "https://graph.microsoft.com"
    us = EntraConnection.model_validate(
        {
            **SETTINGS,
            "authority_url": "https://login.microsoftonline.us/",
            "graph_url": "https://graph.microsoft.us",
        }
    )
    assert (us.authority_url, us.graph_url) == (
        "https://login.microsoftonline.us",
        "https://graph.microsoft.us",
    )


def test_an_endpoint_with_a_path_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        EntraConnection.model_validate({**SETTINGS, "graph_url": "https://graph.microsoft.com/v1.0"})
    assert refused.value.field == "connection.graph_url"


def test_exactly_one_credential_is_required() -> None:
    without = {k: v for k, v in SETTINGS.items() if k != "client_secret"}
    with pytest.raises(ConfigurationError, match="exactly one credential"):
        EntraConnection.model_validate(without)
    with pytest.raises(ConfigurationError) as both:
        EntraConnection.model_validate({**SETTINGS, "certificate": make_certificate(key_size=1024)})
    assert both.value.field == "connection.certificate"


def test_a_certificate_must_hold_a_key_and_a_certificate() -> None:
    pem = make_certificate(key_size=1024)
    key_only = pem.split("-----BEGIN CERTIFICATE-----")[0]
    without_secret = {k: v for k, v in SETTINGS.items() if k != "client_secret"}
    with pytest.raises(ConfigurationError) as refused:
        EntraConnection.model_validate({**without_secret, "certificate": key_only})
    assert refused.value.field == "connection.certificate"
    with pytest.raises(ConfigurationError, match="private key"):
        EntraConnection.model_validate({**without_secret, "certificate": "not a pem"})


def test_secrets_are_declared_and_kept_out_of_repr() -> None:
    settings = EntraConnection.model_validate(SETTINGS)
    assert EntraConnection.secret_fields == ("client_secret", "certificate")
    assert "s3cret" not in repr(settings)
    with pytest.raises(ValueError):
        EntraConnection.model_validate({**SETTINGS, "password": "x"})


def test_blank_tenant_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigurationError) as refused:
        EntraConnection.model_validate({**SETTINGS, "tenant_id": "  "})
    assert refused.value.field == "connection.tenant_id"


# ------------------------------------------------------------------ $select and mapping


def test_select_is_exactly_the_mapping_fields_plus_what_the_connector_needs(graph: GraphKit) -> None:
    connector = graph.connector(fields=("jobTitle", "department", "employeeId"))
    events = list(connector.read(None))
    delta = [r for r in graph.sandbox.requests if r.path == "/v1.0/users/delta"]
    assert "$select=id,accountEnabled,department,employeeId,jobTitle,mail,userPrincipalName" in unquote(
        delta[0].query
    )
    # Later pages follow the nextLink unchanged: the options live in the opaque token.
    assert all("$skiptoken=" in r.query and "$select" not in r.query for r in delta[1:])
    for event in events:
        if isinstance(event, UserUpserted):
            assert set(event.user.data) <= {
                "id",
                "accountEnabled",
                "department",
                "employeeId",
                "jobTitle",
                "mail",
                "userPrincipalName",
            }
            assert "department" in event.user.data


def test_without_fields_the_default_mapping_fields_are_selected(graph: GraphKit) -> None:
    assert graph.connector().user_select == (
        "id",
        "accountEnabled",
        "displayName",
        "givenName",
        "mail",
        "surname",
        "userPrincipalName",
    )


def test_default_mapping_falls_back_from_mail_to_the_upn_in_lower_case(graph: GraphKit) -> None:
    env = ImmutableSandboxedEnvironment()
    email = env.from_string(EntraConnector.default_mapping["email"])
    users = [e.user for e in graph.connector().read(None) if isinstance(e, UserUpserted)]
    without_mail = [u for u in users if "mail" not in u.data]
    assert without_mail, "the seeded directory has users without a mailbox"
    for user in users:
        expected = (user.data.get("mail") or user.data["userPrincipalName"]).lower()
        assert email.render(user.data) == expected
    assert EntraConnector.default_mapping["username"] == "userPrincipalName"
    assert (EntraConnector.default_mapping["given_name"], EntraConnector.default_mapping["family_name"]) == (
        "givenName",
        "surname",
    )


def test_a_field_graph_cannot_list_is_a_configuration_error(graph: GraphKit) -> None:
    with pytest.raises(ConfigurationError) as refused:
        list(graph.connector(fields=("birthday",)).read(None))
    assert refused.value.field == "settings.attribute_mapping"
    assert "birthday" in refused.value.message


def test_an_unknown_field_is_a_configuration_error_at_check_time(graph: GraphKit) -> None:
    with pytest.raises(ConfigurationError) as refused:
        graph.connector(fields=("departmnt",)).check()
    assert refused.value.field == "settings.attribute_mapping"
    assert "departmnt" in refused.value.message


# ------------------------------------------------------------------ first round


def test_the_first_read_is_full_and_handles_removed_entries_from_the_first_round(graph: GraphKit) -> None:
    events = list(graph.connector().read(None))
    assert events[0] == ReadStarted(full=True, note="no cursor: reading every user and group (full round)")
    removed = {e.external_id for e in events if isinstance(e, UserRemoved)}
    assert removed == set(graph.sandbox.snapshot()["removed_users"])
    assert len(removed) == TEST_DEPARTED
    upserted = {e.user.external_id for e in events if isinstance(e, UserUpserted)}
    assert not removed & upserted


def test_disabled_accounts_are_inactive(graph: GraphKit) -> None:
    users = {e.user.external_id: e.user for e in graph.connector().read(None) if isinstance(e, UserUpserted)}
    disabled = {
        uid for uid, props in graph.sandbox.snapshot()["users"].items() if not props["accountEnabled"]
    }
    assert disabled, "the seeded directory has disabled accounts"
    assert {uid for uid, user in users.items() if not user.active} == disabled


def test_members_split_over_pages_with_replays_are_merged_into_one_event_per_group(graph: GraphKit) -> None:
    graph.sandbox.behaviour.member_budget_min = 1
    graph.sandbox.behaviour.member_budget_max = 3
    graph.sandbox.behaviour.replay_rate = 0.5
    events = list(graph.connector().read(None))
    group_events = [e for e in events if isinstance(e, GroupUpserted)]
    assert len(group_events) == len({e.group.external_id for e in group_events})
    assert all(e.replace_members for e in group_events)
    snapshot = graph.sandbox.snapshot()["groups"]
    assert Mirror.of(events).memberships() == {
        gid: (frozenset(g["users"]), frozenset(g["groups"])) for gid, g in snapshot.items()
    }
    assert graph.sandbox.served["member_entries"] > sum(
        len(g["users"]) + len(g["groups"]) for g in snapshot.values()
    )


# ------------------------------------------------------------------ incremental rounds


def test_an_incremental_read_downloads_only_the_ten_changes(graph: GraphKit) -> None:
    sandbox = graph.sandbox
    connector = graph.connector()
    first = Mirror.of(connector.read(None))
    people = sorted(first.users)
    groups = sandbox.population.groups
    sandbox.reset_stats()

    for uid in people[:4]:
        sandbox.update_user(uid, {"displayName": f"Changed {uid[:4]}"})
    sandbox.disable_user(people[4])
    sandbox.disable_user(people[5])
    sandbox.delete_user(people[6])
    sandbox.delete_user(people[7], permanent=True)
    hired = sandbox.add_user({"displayName": "New Hire"})
    sandbox.change_members(groups[-1].id, add=[hired["id"]])

    events = list(connector.read(first.cursor))
    assert events[0] == ReadStarted(full=False, note=None)
    assert kinds(events)["UserUpserted"] == 7 and kinds(events)["UserRemoved"] == 2
    served = sandbox.served
    assert served["users"] + served["users_removed"] == 9
    # Groups carry only the membership changes: the new hire and the two deleted users' removals.
    changed_groups = {e.group.external_id for e in events if isinstance(e, GroupUpserted)}
    assert groups[-1].id in changed_groups
    assert served["member_entries"] <= 1 + 2 * len(changed_groups)
    assert all(not e.replace_members for e in events if isinstance(e, GroupUpserted))
    requests = graph_requests(graph)
    assert "POST" not in " ".join(requests), "the token is reused"
    assert len(requests) <= 6, requests
    after = Mirror.of(events, base=first)
    fresh = Mirror.of(graph.connector().read(None))
    assert {k: dict(v.data) for k, v in after.users.items()} == {
        k: dict(v.data) for k, v in fresh.users.items()
    }
    assert after.memberships() == fresh.memberships()


def test_a_change_to_an_unselected_property_is_not_downloaded(graph: GraphKit) -> None:
    connector = graph.connector(fields=("displayName",))
    cursor = Mirror.of(connector.read(None)).cursor
    uid = next(iter(graph.sandbox.snapshot()["users"]))
    graph.sandbox.update_user(uid, {"jobTitle": "Chief Everything Officer"})
    assert kinds(list(connector.read(cursor))) == Counter({"ReadStarted": 1, "ReadFinished": 1})
    tracking = graph.connector(fields=("jobTitle",))
    cursor = Mirror.of(tracking.read(None)).cursor
    graph.sandbox.update_user(uid, {"jobTitle": "Chief Nothing Officer"})
    changed = [e for e in tracking.read(cursor) if isinstance(e, UserUpserted)]
    assert [(e.user.external_id, e.user.data["jobTitle"]) for e in changed] == [
        (uid, "Chief Nothing Officer")
    ]


def test_membership_changes_arrive_as_additions_and_removals(graph: GraphKit) -> None:
    sandbox = graph.sandbox
    connector = graph.connector()
    cursor = Mirror.of(connector.read(None)).cursor
    target, nested = sandbox.population.groups[-1], sandbox.population.groups[-2]
    current = sandbox.snapshot()["groups"][target.id]["users"]
    newcomer = next(u for u in sandbox.snapshot()["users"] if u not in current)
    sandbox.change_members(target.id, add=[newcomer, nested.id], remove=current[:1])
    events = [e for e in connector.read(cursor) if isinstance(e, GroupUpserted)]
    assert len(events) == 1
    event = events[0]
    assert (event.added_users, event.removed_users) == (frozenset({newcomer}), frozenset(current[:1]))
    assert event.added_groups == frozenset({nested.id}) and not event.replace_members
    assert event.group.name == target.name


def test_deleted_groups_renamed_groups_and_restored_users(graph: GraphKit) -> None:
    sandbox = graph.sandbox
    connector = graph.connector()
    first = Mirror.of(connector.read(None))
    gone, renamed = sandbox.population.groups[-1], sandbox.population.groups[-3]
    sandbox.delete_group(gone.id)
    sandbox.update_group(renamed.id, {"displayName": "Renamed"})
    returning = sandbox.snapshot()["removed_users"][0]
    sandbox.restore_user(returning)
    events = list(connector.read(first.cursor))
    assert GroupRemoved(gone.id) in events
    names = {e.group.external_id: e.group.name for e in events if isinstance(e, GroupUpserted)}
    assert names[renamed.id] == "Renamed"
    assert returning in {e.user.external_id for e in events if isinstance(e, UserUpserted)}


def test_a_mapping_that_needs_new_fields_starts_a_full_round(graph: GraphKit) -> None:
    cursor = Mirror.of(graph.connector().read(None)).cursor
    events = list(graph.connector(fields=("department", "mail")).read(cursor))
    started = events[0]
    assert isinstance(started, ReadStarted) and started.full and "department" in (started.note or "")
    assert kinds(events)["UserUpserted"] == len(graph.sandbox.snapshot()["users"])


def test_a_cursor_from_another_tenant_or_endpoint_starts_a_full_round(graph: GraphKit) -> None:
    cursor = Mirror.of(graph.connector().read(None)).cursor
    assert cursor is not None
    events = list(graph.connector().read({**cursor, "graph_url": "https://graph.microsoft.com"}))
    started = events[0]
    assert isinstance(started, ReadStarted) and started.full and "changed" in (started.note or "")


@pytest.mark.parametrize(
    ("mode", "status", "case"),
    [
        ("syncStateNotFound", 400, "camel"),
        ("syncStateNotFound", 400, "pascal"),
        ("resyncRequired", 400, "camel"),
        ("resyncRequired", 410, "camel"),
        ("location", 410, "camel"),
    ],
)
def test_expired_delta_state_falls_back_to_a_full_round_and_says_so(
    graph: GraphKit, mode: str, status: int, case: str
) -> None:
    connector = graph.connector()
    cursor = Mirror.of(connector.read(None)).cursor
    graph.sandbox.update_user(next(iter(graph.sandbox.snapshot()["users"])), {"displayName": "After expiry"})
    graph.sandbox.expire_delta_tokens(mode, status=status, code_case=case)
    events = list(connector.read(cursor))
    started = events[0]
    assert isinstance(started, ReadStarted) and started.full
    assert "expired" in (started.note or "") and str(status) in (started.note or "")
    mirror = Mirror.of(events)
    assert {uid: u.data["displayName"] for uid, u in mirror.users.items()} == {
        uid: p["displayName"] for uid, p in graph.sandbox.snapshot()["users"].items()
    }
    # The new cursor works again.
    assert not [e for e in connector.read(mirror.cursor) if not isinstance(e, ReadStarted | ReadFinished)]


def test_a_delta_token_older_than_seven_days_falls_back_to_a_full_round(graph: GraphKit) -> None:
    connector = graph.connector()
    cursor = Mirror.of(connector.read(None)).cursor
    graph.sandbox.clock_offset = 8 * 86400
    started = next(iter(connector.read(cursor)))
    assert isinstance(started, ReadStarted) and started.full and "syncStateNotFound" in (started.note or "")


def test_delta_state_expiring_in_the_middle_of_a_read_starts_it_over_in_full(graph: GraphKit) -> None:
    events = iter(graph.connector().read(None))
    assert isinstance(next(events), ReadStarted)
    next(events)
    graph.sandbox.expire_delta_tokens("syncStateNotFound")
    rest = list(events)
    restarts = [e for e in rest if isinstance(e, ReadStarted)]
    assert len(restarts) == 1 and restarts[0].full and "middle of reading" in (restarts[0].note or "")
    # Folded as the engine folds it, the read that started over is the whole directory.
    mirror = Mirror.of(rest[rest.index(restarts[0]) :])
    assert set(mirror.users) == set(graph.sandbox.snapshot()["users"])
    assert isinstance(rest[-1], ReadFinished)


def test_delta_state_expiring_again_in_the_round_that_started_over_fails_the_read(graph: GraphKit) -> None:
    events = iter(graph.connector().read(None))
    next(events), next(events)
    graph.sandbox.expire_delta_tokens("syncStateNotFound")
    assert next(e for e in events if isinstance(e, ReadStarted)).full
    next(events)
    graph.sandbox.expire_delta_tokens("syncStateNotFound")
    with pytest.raises(TransientError, match="again in the full round"):
        list(events)


# ------------------------------------------------------------------ throttling and retries


def test_429_is_retried_after_the_retry_after_seconds(graph: GraphKit) -> None:
    graph.sandbox.inject(Fault(kind="throttle", count=2, retry_after=3))
    mirror = Mirror.of(graph.connector().read(None))
    assert len(mirror.users) == len(graph.sandbox.snapshot()["users"])
    assert graph.sleeps == [3.0, 3.0]
    assert [r.status for r in graph.sandbox.requests if r.path.startswith("/v1.0")][:3] == [429, 429, 200]


def test_429_without_retry_after_backs_off_exponentially(graph: GraphKit) -> None:
    graph.sandbox.inject(Fault(kind="throttle", count=3, retry_after=None))
    list(graph.connector().read(None))
    # base 0.5 doubling, equal jitter at 0.5: 0.375, 0.75, 1.5
    assert graph.sleeps == [0.375, 0.75, 1.5]


@pytest.mark.parametrize("status", [503, 504])
def test_unavailable_graph_is_retried(graph: GraphKit, status: int) -> None:
    graph.sandbox.inject(
        Fault(kind="error", count=2, status=status, code="serviceNotAvailable", retry_after=2)
    )
    assert Mirror.of(graph.connector().read(None)).users
    assert graph.sleeps == [2.0, 2.0]


def test_throttling_that_outlasts_the_retries_is_a_transient_error(graph: GraphKit) -> None:
    graph.sandbox.inject(Fault(kind="throttle", count=50, retry_after=1))
    with pytest.raises(TransientError) as failed:
        list(graph.connector().read(None))
    assert "429" in failed.value.message and "4 attempts" in failed.value.message
    assert failed.value.hint and "next run" in failed.value.hint


def test_a_retry_after_longer_than_we_wait_fails_at_once(graph: GraphKit) -> None:
    graph.sandbox.inject(Fault(kind="throttle", count=1, retry_after=3600))
    connector = graph.connector(http=graph.http_options(retry=RetryPolicy(attempts=4, max_retry_after=60)))
    with pytest.raises(TransientError):
        list(connector.read(None))
    assert graph.sleeps == []


def test_a_throttled_token_endpoint_is_retried(graph: GraphKit) -> None:
    graph.sandbox.inject(Fault(kind="throttle", target="token", count=1, status=429, retry_after=1))
    assert graph.connector().check().ok
    assert graph.sleeps == [1.0]


def test_a_token_graph_refuses_is_replaced_once(graph: GraphKit) -> None:
    connector = graph.connector()
    cursor = Mirror.of(connector.read(None)).cursor
    graph.sandbox.revoke_tokens()
    events = list(connector.read(cursor))
    assert isinstance(events[-1], ReadFinished)
    assert sum(1 for r in graph.sandbox.requests if r.path.endswith("/token")) == 2


# ------------------------------------------------------------------ sign-in and permission errors


def test_unknown_tenant_is_an_authentication_error_naming_the_tenant(graph: GraphKit) -> None:
    with pytest.raises(AuthenticationError) as failed:
        graph.connector(tenant_id="fabrikam.onmicrosoft.com").check()
    assert "fabrikam.onmicrosoft.com" in failed.value.message and "AADSTS90002" in failed.value.message
    assert "connection.tenant_id" in (failed.value.hint or "")


def test_unknown_client_id_is_an_authentication_error_naming_the_client(graph: GraphKit) -> None:
    with pytest.raises(AuthenticationError) as failed:
        graph.connector(client_id="11111111-2222-3333-4444-555555555555").check()
    assert "11111111-2222-3333-4444-555555555555" in failed.value.message
    assert "AADSTS700016" in failed.value.message and "connection.client_id" in (failed.value.hint or "")


def test_a_wrong_secret_is_an_authentication_error_that_says_which_value_to_use(graph: GraphKit) -> None:
    with pytest.raises(AuthenticationError) as failed:
        graph.connector(client_secret="not-the-secret").check()
    assert "client secret" in failed.value.message and "AADSTS7000215" in failed.value.message
    assert "Value" in (failed.value.hint or "") and "not-the-secret" not in str(failed.value)


def test_an_unreachable_endpoint_is_an_unreachable_error() -> None:
    port = free_port()
    connector = EntraConnector(
        EntraConnection.model_validate(
            {**SETTINGS, "authority_url": f"http://127.0.0.1:{port}", "graph_url": f"http://127.0.0.1:{port}"}
        ),
        http=HttpOptions(retry=RetryPolicy(attempts=2), sleep=lambda _: None),
    )
    with pytest.raises(UnreachableError) as failed:
        connector.check()
    assert f"127.0.0.1:{port}" in failed.value.message and "2 attempts" in failed.value.message


def test_a_graph_that_does_not_answer_in_time_is_unreachable(graph: GraphKit) -> None:
    connector = graph.connector(http=graph.http_options(timeout=0.2, retry=RetryPolicy(attempts=2)))
    connector.check()
    graph.sandbox.inject(Fault(kind="delay", count=2, delay=1.0))
    with pytest.raises(UnreachableError, match=r"did not answer within 0\.2s"):
        list(connector.read(None))


@pytest.mark.parametrize(
    ("roles", "missing"),
    [
        (["GroupMember.Read.All"], "User.Read.All"),
        (["User.Read.All"], "GroupMember.Read.All"),
    ],
)
def test_a_missing_permission_is_named(graph: GraphKit, roles: list[str], missing: str) -> None:
    graph.sandbox.set_permissions(graph.sandbox.client_id, roles)
    for action in (lambda c: c.check(), lambda c: list(c.read(None))):
        with pytest.raises(PermissionDeniedError) as denied:
            action(graph.connector())
        assert f"lacks the Microsoft Graph application permission {missing}" in denied.value.message
        assert "Authorization_RequestDenied" in denied.value.message
        assert "Grant admin consent" in (denied.value.hint or "")


def test_missing_admin_consent_says_so(graph: GraphKit) -> None:
    graph.sandbox.set_permissions(graph.sandbox.client_id, [])
    with pytest.raises(PermissionDeniedError) as denied:
        graph.connector().check()
    assert "no admin-consented" in denied.value.message and "User.Read.All" in denied.value.message


def test_directory_read_all_is_enough_and_check_reports_the_permissions(graph: GraphKit) -> None:
    graph.sandbox.set_permissions(graph.sandbox.client_id, ["Directory.Read.All"])
    result = graph.connector().check()
    assert result.ok
    assert any("Directory.Read.All" in d for d in result.details)
    assert any(graph.sandbox.tenant_id in d for d in result.details)


def test_a_graph_url_of_another_cloud_is_a_configuration_error(graph: GraphKit) -> None:
    with pytest.raises(ConfigurationError) as refused:
        graph.connector(graph_url="https://graph.contoso.example").check()
    assert refused.value.field == "connection.graph_url"


# ------------------------------------------------------------------ certificates and the picker


def test_certificate_credentials_sign_in(graph: GraphKit) -> None:
    pem = make_certificate(key_size=2048)
    graph.sandbox.register_app(
        graph.sandbox.client_id, certificate_pem=pem.split("-----END PRIVATE KEY-----")[1]
    )
    connector = graph.connector(client_secret=None, certificate=pem)
    assert connector.check().ok
    token_form = [r for r in graph.sandbox.requests if r.path.endswith("/token")]
    assert len(token_form) == 1


def test_an_unregistered_certificate_is_an_authentication_error(graph: GraphKit) -> None:
    connector = graph.connector(client_secret=None, certificate=make_certificate(key_size=2048))
    with pytest.raises(AuthenticationError) as failed:
        connector.check()
    assert "certificate" in failed.value.message and "connection.certificate" in (failed.value.hint or "")


def test_list_groups_uses_the_groups_list_not_a_delta_round(graph: GraphKit) -> None:
    groups = {g.external_id: g.name for g in graph.connector().list_groups()}
    assert groups == {gid: g["displayName"] for gid, g in graph.sandbox.snapshot()["groups"].items()}
    paths = {r.path for r in graph.sandbox.requests if r.path.startswith("/v1.0")}
    assert paths == {"/v1.0/groups"}


def test_events_are_plain_data(graph: GraphKit) -> None:
    events: list[Any] = list(graph.connector().read(None))
    assert all(isinstance(e.user.data, dict) for e in events if isinstance(e, UserUpserted))
    assert not any("@odata" in key for e in events if isinstance(e, UserUpserted) for key in e.user.data)
