"""The Google sandbox speaks the Directory API's wire format (§3) and verifies what Google verifies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from accessiq.sandbox.google import (
    GROUP_READ,
    JWT_BEARER,
    TOKEN_AUDIENCE,
    USER_READ,
    GoogleSandbox,
)
from accessiq.sandbox.google_commands import SANDBOX

from ..connectors.google_kit import GoogleKit, fresh_google, google_server

runner = CliRunner()
API = "/admin/directory/v1"
# A scope the sandbox's delegation does not authorise.
USER_WRITE = "https://www.googleapis.com/auth/admin.directory.user"


@pytest.fixture(scope="module")
def google_server_module() -> Iterator[tuple[GoogleSandbox, str]]:
    with google_server() as server:
        yield server


@pytest.fixture
def google(google_server_module: tuple[GoogleSandbox, str]) -> Iterator[GoogleKit]:
    with fresh_google(google_server_module) as kit:
        yield kit


def assertion(sandbox: GoogleSandbox, *, key: Any = None, **claims: Any) -> str:
    """A JWT-bearer assertion signed with the service account's key unless `key` says otherwise."""
    now = int(time.time())
    payload = {
        "iss": sandbox.client_email,
        "sub": sandbox.admin_email,
        "scope": f"{USER_READ} {GROUP_READ}",
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    signing = key or sandbox._private_key
    return jwt.encode(payload, signing, algorithm="RS256", headers={"kid": sandbox.key_id})


def token(google: GoogleKit, grant: str, grant_type: str = JWT_BEARER) -> httpx.Response:
    return httpx.post(google.token_url, data={"grant_type": grant_type, "assertion": grant}, timeout=10)


def bearer(google: GoogleKit) -> dict[str, str]:
    answer = token(google, assertion(google.sandbox))
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def get(google: GoogleKit, path: str, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    return httpx.get(f"{google.url}{API}/{path}", params=params, headers=headers or bearer(google), timeout=10)


# ------------------------------------------------------------------ token endpoint


def test_a_valid_assertion_gets_a_bearer_token(google: GoogleKit) -> None:
    answer = token(google, assertion(google.sandbox))
    body = answer.json()
    assert answer.status_code == 200 and body["token_type"] == "Bearer" and body["access_token"].startswith("ya29.")
    assert 0 < body["expires_in"] <= 3600


@pytest.mark.parametrize(
    ("claims", "status", "error", "description"),
    [
        ({"key": "other"}, 400, "invalid_grant", "Invalid JWT Signature."),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, 400, "invalid_grant", "account not found"),
        ({"aud": "http://127.0.0.1/token"}, 400, "invalid_grant", "Failed audience check"),
        ({"exp": int(time.time()) - 10, "iat": int(time.time()) - 100}, 400, "invalid_grant", "short-lived"),
        ({"exp": int(time.time()) + 7200}, 400, "invalid_grant", "short-lived"),
        ({"scope": None}, 400, "invalid_scope", "missing scope"),
        ({"sub": "ghost@contoso.example"}, 400, "invalid_grant", "Invalid email or User ID"),
        ({"scope": USER_WRITE}, 401, "unauthorized_client", "not authorized for any of the scopes"),
    ],
    ids=["signature", "iss", "aud", "expired", "too-long", "no-scope", "unknown-sub", "scope-not-delegated"],
)
def test_the_token_endpoint_verifies_every_claim(
    google: GoogleKit, claims: dict[str, Any], status: int, error: str, description: str
) -> None:
    if claims.pop("key", None):
        claims["key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = token(google, assertion(google.sandbox, **claims))
    assert answer.status_code == status
    assert answer.json()["error"] == error and description in answer.json()["error_description"]


def test_delegation_is_checked_per_scope(google: GoogleKit) -> None:
    google.sandbox.set_delegation([USER_READ])
    assert token(google, assertion(google.sandbox, scope=USER_READ)).status_code == 200
    refused = token(google, assertion(google.sandbox))
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized_client"
    assert token(google, "x.y.z", grant_type="client_credentials").json()["error"] == "unsupported_grant_type"


# ------------------------------------------------------------------ users


def test_users_list_needs_a_customer_and_caps_max_results_at_500(google: GoogleKit) -> None:
    headers = bearer(google)
    missing = get(google, "users", headers)
    assert missing.status_code == 400 and missing.json()["error"]["errors"][0]["reason"] == "badRequest"
    too_many = get(google, "users", headers, customer="my_customer", maxResults="501")
    assert too_many.status_code == 400 and "[1, 500]" in too_many.json()["error"]["message"]
    wrong = get(google, "users", headers, customer="C0nothere")
    assert wrong.status_code == 400


def test_users_page_with_opaque_tokens_bound_to_their_query(google: GoogleKit) -> None:
    google.sandbox.behaviour.users_max = 500
    headers = bearer(google)
    seen: list[str] = []
    params = {"customer": "my_customer", "maxResults": "25"}
    page = get(google, "users", headers, **params).json()
    assert page["kind"] == "admin#directory#users" and len(page["users"]) == 25
    while True:
        seen += [u["id"] for u in page["users"]]
        if "nextPageToken" not in page:
            break
        page = get(google, "users", headers, **params, pageToken=page["nextPageToken"]).json()
    assert sorted(seen) == sorted(google.sandbox.users) and len(seen) == len(set(seen))
    first = get(google, "users", headers, **params).json()
    other = get(google, "users", headers, customer="my_customer", maxResults="10", pageToken=first["nextPageToken"])
    assert other.status_code == 400


def test_org_unit_queries_include_sub_units_not_prefix_siblings(google: GoogleKit) -> None:
    headers = bearer(google)

    def emails(query: str) -> set[str]:
        answer = get(google, "users", headers, customer="my_customer", maxResults="500", query=query)
        assert answer.status_code == 200, answer.text
        return {u["orgUnitPath"] for u in answer.json().get("users", [])}

    sales = emails("orgUnitPath='/Sales'")
    assert "/Sales/EMEA Sales" in sales and "/Salesforce Admins" not in sales
    assert all(p == "/Sales" or p.startswith("/Sales/") for p in sales)
    assert emails("orgUnitPath='/Sales/EMEA Sales'") == {"/Sales/EMEA Sales"}
    assert "/Salesforce Admins" in emails("orgUnitPath='/Salesforce Admins' isSuspended=false")
    unknown = get(google, "users", headers, customer="my_customer", query="orgUnitPath='/Nowhere'")
    assert unknown.status_code == 400 and "INVALID_OU_ID" in unknown.json()["error"]["message"]
    bad = get(google, "users", headers, customer="my_customer", query="lastLogin>2020")
    assert bad.status_code == 400


def test_quoted_org_unit_paths_unescape(google: GoogleKit) -> None:
    google.sandbox.add_org_unit("/Bob's Team")
    uid = sorted(google.sandbox.users)[0]
    google.sandbox.move_user(uid, "/Bob's Team")
    answer = get(google, "users", customer="my_customer", query="orgUnitPath='/Bob\\'s Team'")
    assert [u["id"] for u in answer.json()["users"]] == [uid]


def test_custom_schemas_come_only_with_projection_full_or_a_matching_mask(google: GoogleKit) -> None:
    headers = bearer(google)
    base = {"customer": "my_customer", "maxResults": "3"}
    assert all("customSchemas" not in u for u in get(google, "users", headers, **base).json()["users"])
    full = get(google, "users", headers, **base, projection="full").json()["users"]
    assert all(u["customSchemas"]["EmploymentData"]["employeeNumber"] for u in full)
    masked = get(google, "users", headers, **base, projection="custom", customFieldMask="Other").json()["users"]
    assert all("customSchemas" not in u for u in masked)


def test_show_deleted_lists_only_deleted_users(google: GoogleKit) -> None:
    uid = sorted(google.sandbox.users)[0]
    google.sandbox.delete_user(uid)
    answer = get(google, "users", customer="my_customer", showDeleted="true").json()
    assert [u["id"] for u in answer["users"]] == [uid] and answer["users"][0]["deletionTime"]


# ------------------------------------------------------------------ groups and members


def test_groups_page_at_most_200_and_count_members_as_a_string(google: GoogleKit) -> None:
    headers = bearer(google)
    assert get(google, "groups", headers, customer="my_customer", maxResults="201").status_code == 400
    group = get(google, "groups", headers, customer="my_customer").json()["groups"][0]
    assert group["kind"] == "admin#directory#group" and isinstance(group["directMembersCount"], str)
    assert int(group["directMembersCount"]) == len(google.sandbox.members[group["id"]])


def test_members_have_roles_and_types_including_customer(google: GoogleKit) -> None:
    sandbox = google.sandbox
    sandbox.behaviour.members_max = 200
    headers = bearer(google)
    everyone = sandbox.groups[sandbox.everyone_id]
    members = get(google, f"groups/{everyone['email']}/members", headers).json()["members"]
    customer = [m for m in members if m["type"] == "CUSTOMER"]
    assert customer == [
        {
            "kind": "admin#directory#member",
            "etag": customer[0]["etag"],
            "id": sandbox.customer_id,
            "role": "MEMBER",
            "type": "CUSTOMER",
            "status": "ACTIVE",
        }
    ]
    assert {m["role"] for m in members if m["type"] == "USER"} == {"OWNER"}
    all_staff = sandbox.ids[sandbox.population.groups[0].id]
    nested = get(google, f"groups/{all_staff}/members", headers, maxResults="200").json()
    assert {m["type"] for m in nested["members"]} >= {"GROUP"}
    owners = get(google, f"groups/{sandbox.ids[sandbox.population.groups[9].id]}/members", headers, roles="OWNER")
    assert {m["role"] for m in owners.json().get("members", [])} <= {"OWNER"}
    derived = get(google, f"groups/{all_staff}/members", headers, includeDerivedMembership="true").json()
    assert any(m["type"] == "USER" for m in derived["members"])
    missing = get(google, "groups/nobody@contoso.example/members", headers)
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"


def test_membership_cycles_are_refused(google: GoogleKit) -> None:
    sandbox = google.sandbox
    all_staff = sandbox.ids[sandbox.population.groups[0].id]
    department = sandbox.ids[sandbox.population.groups[1].id]
    with pytest.raises(ValueError, match="cycles"):
        sandbox.change_members(department, add=[all_staff])


# ------------------------------------------------------------------ auth and errors


def test_errors_use_googles_envelope(google: GoogleKit) -> None:
    unauthenticated = get(google, "users", {"Authorization": "Bearer nope"}, customer="my_customer")
    error = unauthenticated.json()["error"]
    assert unauthenticated.status_code == 401 and error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0]["reason"] == "authError" and error["code"] == 401
    scoped = token(google, assertion(google.sandbox, scope=USER_READ)).json()["access_token"]
    no_scope = get(google, "groups", {"Authorization": f"Bearer {scoped}"}, customer="my_customer")
    assert no_scope.status_code == 403 and no_scope.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    regular = sorted(u["primaryEmail"] for u in google.sandbox.users.values() if not u["isAdmin"])[0]
    plain = token(google, assertion(google.sandbox, sub=regular)).json()["access_token"]
    forbidden = get(google, "users", {"Authorization": f"Bearer {plain}"}, customer="my_customer")
    assert (
        forbidden.status_code == 403
        and forbidden.json()["error"]["message"] == "Not Authorized to access this resource/api"
    )


@pytest.mark.parametrize(
    ("reason", "status"), [("userRateLimitExceeded", 403), ("quotaExceeded", 403), ("rateLimitExceeded", 429)]
)
def test_quota_errors_on_demand(google: GoogleKit, reason: str, status: int) -> None:
    headers = bearer(google)
    assert httpx.post(f"{google.url}/_admin/faults", json={"kind": "quota", "reason": reason}).status_code == 201
    answer = get(google, "users", headers, customer="my_customer")
    assert answer.status_code == status and "retry-after" not in answer.headers
    detail = answer.json()["error"]["errors"][0]
    assert detail == {"message": detail["message"], "domain": "usageLimits", "reason": reason}
    assert get(google, "users", headers, customer="my_customer").status_code == 200


# ------------------------------------------------------------------ seeding and commands


def test_the_seed_has_nested_org_units_nested_groups_and_every_user_state(google: GoogleKit) -> None:
    sandbox = google.sandbox
    assert {"/", "/Sales", "/Sales/EMEA Sales", "/Salesforce Admins"} <= sandbox.org_units
    users = sandbox.users.values()
    assert any(u["suspended"] for u in users) and any(u["archived"] for u in users)
    assert any(v.type == "GROUP" for members in sandbox.members.values() for v in members.values())
    again = GoogleSandbox(60, 16, seed=5)
    assert sorted(u["primaryEmail"] for u in again.users.values()) == sorted(u["primaryEmail"] for u in users)


def invoke(google: GoogleKit, *args: str) -> Any:
    # `accessiq sandbox google` mounts exactly these commands (cli/sandbox.py reads the SandboxSpec).
    return runner.invoke(SANDBOX.commands, [*args, "--url", google.url])


def test_serving_writes_the_key_and_prints_a_directory_document(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: served.update(kwargs, app=app))
    key = tmp_path / "key.json"
    result = runner.invoke(
        SANDBOX.commands, ["--users", "12", "--groups", "4", "--port", "9124", "--key-out", str(key)]
    )
    assert result.exit_code == 0, result.output
    assert served["port"] == 9124
    info = json.loads(key.read_text())
    assert info["type"] == "service_account" and info["token_uri"] == "http://127.0.0.1:9124/token"
    serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert f"service_account: file:{key.resolve()}" in result.output
    assert "token_url: http://127.0.0.1:9124/token" in result.output and "provider: google" in result.output
    assert "13 users" in result.output  # the generated people and the admin


def test_admin_subcommands_change_a_running_sandbox(google: GoogleKit) -> None:
    created = invoke(
        google, "add-user", "--given-name", "Zoe", "--family-name", "Quinn", "--org-unit", "/Sales", "--json"
    )
    assert created.exit_code == 0, created.output
    user = json.loads(created.output)
    assert user["name"]["fullName"] == "Zoe Quinn" and user["orgUnitPath"] == "/Sales"
    email = user["primaryEmail"]
    assert invoke(google, "update-user", email, "--set", "name.familyName=Hopper").exit_code == 0
    assert google.sandbox.users[user["id"]]["name"]["familyName"] == "Hopper"
    assert invoke(google, "suspend-user", email).exit_code == 0 and google.sandbox.users[user["id"]]["suspended"]
    assert invoke(google, "archive-user", email).exit_code == 0 and google.sandbox.users[user["id"]]["archived"]
    assert invoke(google, "move-user", email, "/Salesforce Admins").exit_code == 0
    assert google.sandbox.users[user["id"]]["orgUnitPath"] == "/Salesforce Admins"
    group = json.loads(invoke(google, "add-group", "Pilots", "--json").output)
    assert invoke(google, "add-members", "Pilots", email, "customer", "--role", "MANAGER").exit_code == 0
    assert {v.type for v in google.sandbox.members[group["id"]].values()} == {"USER", "CUSTOMER"}
    assert invoke(google, "remove-members", "Pilots", "customer").exit_code == 0
    assert invoke(google, "delete-user", email).exit_code == 0 and user["id"] in google.sandbox.deleted_users
    assert invoke(google, "delete-group", group["id"]).exit_code == 0
    assert invoke(google, "fault", "quota", "--reason", "quotaExceeded", "--count", "2").exit_code == 0
    assert google.sandbox.faults[0].reason == "quotaExceeded" and google.sandbox.faults[0].count == 2
    assert invoke(google, "delegation", "admin.directory.user.readonly").exit_code == 0
    assert google.sandbox.delegation[google.sandbox.client_id] == {USER_READ}
    assert json.loads(invoke(google, "info", "--json").output)["customer_id"] == google.sandbox.customer_id
    missing = invoke(google, "suspend-user", "nobody@nowhere.example")
    assert missing.exit_code == 3 and "nobody@nowhere.example" in missing.output
    assert invoke(google, "reset").exit_code == 0


def test_the_demo_starts_a_sandbox_a_directory_document_can_read() -> None:
    assert SANDBOX.start_demo is not None
    demo = SANDBOX.start_demo()
    try:
        from accessiq.connectors.google import GoogleConnection, GoogleConnector

        document = demo.document
        assert document["provider"] == "google"
        connector = GoogleConnector(GoogleConnection.model_validate(document["connection"]))
        try:
            assert connector.check().ok
        finally:
            connector.close()
    finally:
        demo.server.stop()
