"""The Okta connector against the Okta sandbox: settings, auth, paging, incremental reads, limits, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from accessiq.connectors.base import GroupRemoved, GroupUpserted, ReadStarted, UserRemoved, UserUpserted
from accessiq.connectors.okta import OktaConnection, OktaConnector
from accessiq.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    SourceError,
    TransientError,
    UnreachableError,
)
from accessiq.sandbox import free_port
from accessiq.sandbox.okta import Fault, OktaSandbox, make_private_key
from accessiq.services import providers
from accessiq.sync.mapping import CompiledMapping

from .contract import Mirror
from .okta_kit import OktaKit, fresh_okta, okta_server

BASE = {"org_url": "https://acme.okta.com", "api_token": "00abc"}


@pytest.fixture(scope="module")
def okta_server_module() -> Iterator[tuple[OktaSandbox, str]]:
    with okta_server() as server:
        yield server


@pytest.fixture
def okta(okta_server_module: tuple[OktaSandbox, str]) -> Iterator[OktaKit]:
    with fresh_okta(okta_server_module) as kit:
        yield kit


def queries(kit: OktaKit, path: str) -> list[dict[str, list[str]]]:
    return [parse_qs(r.query) for r in kit.sandbox.requests if r.path == path]


def oauth(kit: OktaKit, kind: str = "rsa", **overrides: Any) -> OktaConnector:
    pem = make_private_key(kind)
    kit.sandbox.register_key(kit.sandbox.client_id, pem)
    return kit.connector(api_token=None, client_id=kit.sandbox.client_id, private_key=pem, **overrides)


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("org_url", "message"),
    [
        ("https://acme-admin.okta.com", "https://acme.okta.com"),
        ("https://acme.okta.com/api/v1", "without a path"),
        ("http://acme.okta.com", "https://"),
        ("not a url", "not an Okta org URL"),
    ],
)
def test_a_malformed_org_url_is_refused_naming_the_field(org_url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        OktaConnection.model_validate({**BASE, "org_url": org_url})
    assert refused.value.field == "connection.org_url"


def test_the_org_url_is_normalised_and_loopback_http_allowed() -> None:
    assert OktaConnection.model_validate({**BASE, "org_url": "https://acme.okta.com/"}).org_url == (
        "https://acme.okta.com"
    )
    assert OktaConnection.model_validate({**BASE, "org_url": "http://127.0.0.1:8742"}).org_url == (
        "http://127.0.0.1:8742"
    )


def test_exactly_one_credential_is_required() -> None:
    with pytest.raises(ConfigurationError) as none:
        OktaConnection.model_validate({"org_url": BASE["org_url"]})
    assert none.value.field == "connection.api_token"
    with pytest.raises(ConfigurationError) as both:
        OktaConnection.model_validate({**BASE, "client_id": "0oa1", "private_key": make_private_key("ec")})
    assert both.value.field == "connection.api_token"
    with pytest.raises(ConfigurationError) as keyless:
        OktaConnection.model_validate({"org_url": BASE["org_url"], "client_id": "0oa1"})
    assert keyless.value.field == "connection.private_key"


def test_the_private_key_must_be_pem_rsa_or_ec() -> None:
    for kind in ("rsa", "ec"):
        OktaConnection.model_validate(
            {"org_url": BASE["org_url"], "client_id": "0oa1", "private_key": make_private_key(kind)}
        )
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for bad in (ed.decode(), "not a pem"):
        with pytest.raises(ConfigurationError) as refused:
            OktaConnection.model_validate({"org_url": BASE["org_url"], "client_id": "0oa1", "private_key": bad})
        assert refused.value.field == "connection.private_key"


def test_a_token_pasted_with_its_scheme_works_and_secrets_stay_out_of_repr() -> None:
    settings = OktaConnection.model_validate({**BASE, "api_token": "SSWS 00secret"})
    assert settings.api_token == "00secret"
    assert "00secret" not in repr(settings)
    assert OktaConnection.secret_fields == ("api_token", "private_key")


def test_the_provider_describes_its_fields_for_the_wizard() -> None:
    provider = providers.get_provider("okta")
    assert (provider.title, provider.available, provider.incremental) == ("Okta", True, True)
    kinds = {f.name: f.kind for f in provider.fields}
    assert kinds == {
        "org_url": "url",
        "api_token": "secret",
        "client_id": "text",
        "private_key": "multiline_secret",
        "key_id": "text",
        "include_everyone_group": "boolean",
    }
    assert all(f.label and f.help for f in provider.fields)
    assert provider.load_sandbox() is not None
    assert OktaConnection.public_origins().allows("https://acme.oktapreview.com")


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_a_service_app_signs_in_with_private_key_jwt_and_caches_its_token(okta: OktaKit, kind: str) -> None:
    connector = oauth(okta, kind)
    mirror = Mirror.of(connector.read(None))
    assert len(mirror.users) == len(okta.sandbox.users)
    assert len([r for r in okta.sandbox.requests if r.path == "/oauth2/v1/token"]) == 1
    token = next(iter(okta.sandbox.access_tokens.values()))
    assert token.scopes == {"okta.users.read", "okta.groups.read", "okta.logs.read"}


def test_a_key_okta_does_not_know_is_an_authentication_error(okta: OktaKit) -> None:
    connector = okta.connector(api_token=None, client_id=okta.sandbox.client_id, private_key=make_private_key())
    with pytest.raises(AuthenticationError, match="client assertion") as refused:
        connector.check()
    assert "signature" in refused.value.message


def test_a_service_app_without_a_required_scope_is_told_which(okta: OktaKit) -> None:
    connector = oauth(okta)
    okta.sandbox.set_permissions(client_id=okta.sandbox.client_id, scopes=["okta.users.read"])
    with pytest.raises(PermissionDeniedError, match=r"okta\.groups\.read"):
        connector.check()


def test_a_service_app_without_the_log_scope_still_reads(okta: OktaKit) -> None:
    connector = oauth(okta)
    okta.sandbox.set_permissions(client_id=okta.sandbox.client_id, scopes=["okta.users.read", "okta.groups.read"])
    first = Mirror.of(connector.read(None))
    assert first.cursor and first.cursor["log_readable"] is False
    events = list(connector.read(first.cursor))
    assert isinstance(events[0], ReadStarted) and "System Log is not readable" in str(events[0].note)


# ------------------------------------------------------------------ users and groups


def test_a_full_read_pages_with_link_and_fetches_deprovisioned_users(okta: OktaKit) -> None:
    mirror = Mirror.of(okta.connector().read(None))
    deprovisioned = {u for u, s in okta.sandbox.snapshot()["users"].items() if s == "DEPROVISIONED"}
    assert deprovisioned and deprovisioned <= set(mirror.users)
    assert not any(mirror.users[u].active for u in deprovisioned)
    users = queries(okta, "/api/v1/users")
    assert {"filter": ['status eq "DEPROVISIONED"'], "limit": ["200"]} in users
    # Pages after the first follow the server's link: its opaque `after` and the original query.
    later = [q for q in users if "after" in q]
    assert later and all(q["limit"] == ["200"] for q in later)


def test_okta_statuses_map_to_active_and_inactive(okta: OktaKit) -> None:
    statuses = [
        "ACTIVE",
        "PROVISIONED",
        "STAGED",
        "RECOVERY",
        "PASSWORD_EXPIRED",
        "LOCKED_OUT",
        "SUSPENDED",
        "DEPROVISIONED",
    ]
    ids = sorted(okta.sandbox.users)[: len(statuses)]
    for uid, status in zip(ids, statuses, strict=True):
        okta.sandbox.set_status(uid, status)
    mirror = Mirror.of(okta.connector().read(None))
    assert [mirror.users[uid].active for uid in ids] == [True] * 6 + [False] * 2


def test_app_groups_are_read_and_everyone_only_on_request(okta: OktaKit) -> None:
    types = {gid: g["type"] for gid, g in okta.sandbox.snapshot()["groups"].items()}
    assert "APP_GROUP" in types.values()
    groups = set(Mirror.of(okta.connector().read(None)).groups)
    assert groups == {gid for gid, t in types.items() if t != "BUILT_IN"}
    assert queries(okta, "/api/v1/groups")[0]["filter"] == ['type eq "OKTA_GROUP" or type eq "APP_GROUP"']
    everyone = Mirror.of(okta.connector(include_everyone_group=True).read(None))
    assert okta.sandbox.everyone_id in everyone.groups
    assert everyone.members[okta.sandbox.everyone_id][0] == set(okta.sandbox.users)


def test_a_next_link_that_repeats_is_an_error_not_a_loop(okta: OktaKit) -> None:
    okta.sandbox.behaviour.repeat_link = True
    with pytest.raises(SourceError, match="same next-page link twice"):
        list(okta.connector().read(None))


def test_a_next_link_to_another_origin_is_not_followed(okta: OktaKit) -> None:
    okta.sandbox.behaviour.link_base = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceError, match="outside"):
        list(okta.connector().read(None))


def test_the_default_mapping_reads_the_profile_and_any_field_by_path(okta: OktaKit) -> None:
    user = next(e.user for e in okta.connector().read(None) if isinstance(e, UserUpserted))
    mapping = CompiledMapping.build(OktaConnector.default_mapping, {"cost_center": "profile.costCenter"})
    mapped = mapping.apply(user.data)
    profile = user.data["profile"]
    assert mapped == {
        "email": profile["email"],
        "username": profile["login"],
        "given_name": profile["firstName"],
        "family_name": profile["lastName"],
        "display_name": profile["displayName"],
        "cost_center": profile["costCenter"],
    }
    assert "_links" not in user.data and "credentials" not in user.data
    no_display = {**user.data, "profile": {**profile, "displayName": None}}
    assert mapping.apply(no_display)["display_name"] == f"{profile['firstName']} {profile['lastName']}"


# ------------------------------------------------------------------ incremental


def test_an_incremental_read_asks_for_what_moved_since_the_mark_minus_the_overlap(okta: OktaKit) -> None:
    connector = okta.connector()
    first = Mirror.of(connector.read(None))
    assert first.cursor is not None
    okta.sandbox.reset_stats()
    uid = sorted(okta.sandbox.users)[0]
    okta.sandbox.update_user(uid, {"title": "CTO"})
    events = list(connector.read(first.cursor))
    assert [e.user.external_id for e in events if isinstance(e, UserUpserted)] == [uid]
    stamp = first.cursor["since"]
    assert queries(okta, "/api/v1/users") == [{"filter": [f'lastUpdated gt "{stamp}"'], "limit": ["200"]}]
    group_query = queries(okta, "/api/v1/groups")[0]
    assert group_query["filter"] == [f'lastUpdated gt "{stamp}" or lastMembershipUpdated gt "{stamp}"']
    # No group changed: no member list was read.
    assert not [r for r in okta.sandbox.requests if r.path.endswith("/users") and "/groups/" in r.path]


def test_only_groups_whose_membership_moved_are_reread(okta: OktaKit) -> None:
    connector = okta.connector()
    first = Mirror.of(connector.read(None))
    okta_groups = sorted(g for g, v in okta.sandbox.snapshot()["groups"].items() if v["type"] == "OKTA_GROUP")
    member = sorted(okta.sandbox.users)[1]
    okta.sandbox.change_members(okta_groups[0], add=[member])
    okta.sandbox.update_group(okta_groups[1], {"name": "Renamed"})
    okta.sandbox.reset_stats()
    events = [e for e in connector.read(first.cursor) if isinstance(e, GroupUpserted)]
    by_id = {e.group.external_id: e for e in events}
    assert set(by_id) == set(okta_groups[:2])
    assert by_id[okta_groups[0]].replace_members and member in by_id[okta_groups[0]].added_users
    assert not by_id[okta_groups[1]].replace_members and by_id[okta_groups[1]].group.name == "Renamed"
    member_reads = {r.path for r in okta.sandbox.requests if "/groups/" in r.path}
    assert member_reads == {f"/api/v1/groups/{okta_groups[0]}/users"}


def test_a_replayed_change_inside_the_overlap_is_not_sent_again(okta: OktaKit) -> None:
    connector = okta.connector()
    first = Mirror.of(connector.read(None))
    uid = sorted(okta.sandbox.users)[0]
    okta.sandbox.update_user(uid, {"title": "CTO"})
    okta.sandbox.delete_user(sorted(okta.sandbox.users)[2], permanent=True)
    second = Mirror.of(connector.read(first.cursor))
    assert second.cursor and second.cursor["recent_users"] == {uid: okta.sandbox.users[uid]["lastUpdated"]}
    third = list(connector.read(second.cursor))
    assert not [e for e in third if isinstance(e, UserUpserted | UserRemoved | GroupUpserted | GroupRemoved)]


def test_users_and_groups_deleted_for_good_come_from_the_system_log(okta: OktaKit) -> None:
    connector = okta.connector()
    first = Mirror.of(connector.read(None))
    uid = sorted(okta.sandbox.users)[5]
    okta.sandbox.delete_user(uid, permanent=True)
    okta_groups = sorted(g for g, v in okta.sandbox.snapshot()["groups"].items() if v["type"] == "OKTA_GROUP")
    okta.sandbox.delete_group(okta_groups[0])
    events = list(connector.read(first.cursor))
    assert UserRemoved(uid) in events and GroupRemoved(okta_groups[0]) in events
    log_query = queries(okta, "/api/v1/logs")[-1]
    assert "until" in log_query and "user.lifecycle.delete.completed" in log_query["filter"][0]


def test_a_cursor_from_another_org_or_setting_reads_everything(okta: OktaKit) -> None:
    cursor = Mirror.of(okta.connector().read(None)).cursor
    assert cursor is not None
    started = next(iter(okta.connector(include_everyone_group=True).read(cursor)))
    assert isinstance(started, ReadStarted) and started.full and "Everyone" in str(started.note)
    moved = next(iter(okta.connector().read({**cursor, "org_url": "https://other.okta.com"})))
    assert isinstance(moved, ReadStarted) and moved.full


# ------------------------------------------------------------------ rate limits and transient errors


def test_a_throttled_org_is_read_to_the_end_without_a_429(okta: OktaKit) -> None:
    okta.sandbox.behaviour.rate_limit = 8
    okta.sandbox.behaviour.rate_window = 1.0
    connector = okta.connector(http=okta.http_options(sleep=__import__("time").sleep))
    mirror = Mirror.of(connector.read(None))
    assert len(mirror.users) == len(okta.sandbox.users)
    assert okta.sandbox.stats()["throttled"] == 0
    assert len(okta.api_requests()) > 8


def test_a_rate_limit_429_waits_until_the_reset(okta: OktaKit) -> None:
    okta.sandbox.inject(Fault(kind="throttle", count=1))
    Mirror.of(okta.connector().read(None))
    assert len(okta.sleeps) == 1 and 0 < okta.sleeps[0] <= 2.0


def test_a_concurrency_429_backs_off(okta: OktaKit) -> None:
    okta.sandbox.inject(Fault(kind="concurrency", count=2))
    Mirror.of(okta.connector().read(None))
    # Exponential backoff with jitter 0.5: 0.375 s, then 0.75 s (not the estimated reset).
    assert okta.sleeps == [0.375, 0.75]


def test_server_errors_are_retried_and_a_lasting_one_names_the_request_id(okta: OktaKit) -> None:
    okta.sandbox.inject(Fault(kind="error", status=500, count=2))
    assert len(Mirror.of(okta.connector().read(None)).users) == len(okta.sandbox.users)
    okta.sandbox.inject(Fault(kind="error", status=503, count=10))
    with pytest.raises(TransientError, match=r"Okta request id \S+"):
        list(okta.connector().read(None))


# ------------------------------------------------------------------ check


def test_check_finds_no_okta_org_at_an_unknown_url(okta: OktaKit) -> None:
    okta.sandbox.behaviour.org_exists = False
    with pytest.raises(ConfigurationError, match="no Okta org answers") as refused:
        okta.connector().check()
    assert refused.value.field == "connection.org_url"


def test_check_reports_a_revoked_token_with_e0000011(okta: OktaKit) -> None:
    okta.sandbox.revoke_api_token()
    with pytest.raises(AuthenticationError, match="E0000011") as refused:
        okta.connector().check()
    assert "revoked" in refused.value.message and "Okta request id" in refused.value.message
    assert "connection.api_token" in str(refused.value.hint)


def test_check_names_what_the_tokens_admin_role_cannot_read(okta: OktaKit) -> None:
    okta.sandbox.set_permissions(permissions=["users"])
    with pytest.raises(PermissionDeniedError, match="read groups") as refused:
        okta.connector().check()
    assert "Read-only Administrator" in str(refused.value.hint)


def test_check_names_a_service_app_without_an_admin_role(okta: OktaKit) -> None:
    connector = oauth(okta)
    okta.sandbox.set_permissions(client_id=okta.sandbox.client_id, permissions=[])
    with pytest.raises(PermissionDeniedError, match="no admin role") as refused:
        connector.check()
    assert "service app" in refused.value.message


def test_check_reports_an_unreachable_org() -> None:
    settings = OktaConnection.model_validate({**BASE, "org_url": f"http://127.0.0.1:{free_port()}"})
    from accessiq.connectors.http import HttpOptions, RetryPolicy

    connector = OktaConnector(
        settings, http=HttpOptions(timeout=2, retry=RetryPolicy(attempts=2), sleep=lambda s: None)
    )
    with pytest.raises(UnreachableError):
        connector.check()


def test_check_says_when_the_log_is_not_readable(okta: OktaKit) -> None:
    okta.sandbox.set_permissions(permissions=["users", "groups"])
    details = okta.connector().check().details
    assert any("System Log is not readable" in d for d in details)
