"""The Okta sandbox on the wire: what a client sees must match provider-apis §2."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from accessiq.sandbox.okta import OktaSandbox, make_private_key
from accessiq.sandbox.okta_commands import SANDBOX, okta_app

from ..connectors.okta_kit import OktaKit, fresh_okta, okta_server


@pytest.fixture(scope="module")
def okta_server_module() -> Iterator[tuple[OktaSandbox, str]]:
    with okta_server() as server:
        yield server


@pytest.fixture
def okta(okta_server_module: tuple[OktaSandbox, str]) -> Iterator[OktaKit]:
    with fresh_okta(okta_server_module) as kit:
        yield kit


def assertion(kit: OktaKit, pem: str, **claims: Any) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())
    body = {
        "iss": kit.sandbox.client_id,
        "sub": kit.sandbox.client_id,
        "aud": f"{kit.url}/oauth2/v1/token",
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256")


def token_request(kit: OktaKit, client_assertion: str, scope: str = "okta.users.read") -> httpx.Response:
    return httpx.post(
        f"{kit.url}/oauth2/v1/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        },
    )


def test_list_all_omits_deprovisioned_users_and_a_filter_finds_them(okta: OktaKit) -> None:
    deprovisioned = {u for u, s in okta.sandbox.snapshot()["users"].items() if s == "DEPROVISIONED"}
    with okta.client() as client:
        listed: set[str] = set()
        url: str | None = "/api/v1/users"
        while url:
            response = client.get(url)
            listed |= {u["id"] for u in response.json()}
            url = response.links.get("next", {}).get("url")
        assert deprovisioned and not deprovisioned & listed
        found = client.get("/api/v1/users", params={"filter": 'status eq "DEPROVISIONED"'}).json()
        assert {u["id"] for u in found} == deprovisioned


def test_pages_carry_one_link_line_per_relation_and_the_limit_is_capped(okta: OktaKit) -> None:
    with okta.client() as client:
        response = client.get("/api/v1/users", params={"limit": "500"})
    assert len(response.json()) == okta.sandbox.behaviour.users_limit_max
    lines = response.headers.get_list("link")
    assert len(lines) == 2 and lines[0].endswith('rel="self"') and lines[1].endswith('rel="next"')
    assert f"after={response.json()[-1]['id']}" in lines[1]
    for name in ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset", "x-okta-request-id"):
        assert response.headers.get(name), name


@pytest.mark.parametrize(
    ("param", "expression"),
    [
        ("filter", 'profile.department eq "Sales"'),
        ("filter", 'lastUpdated ne "2020-01-01T00:00:00.000Z"'),
        ("filter", 'not status eq "ACTIVE"'),
        ("search", 'profile.department ne "Sales"'),
    ],
)
def test_unsupported_expressions_are_refused_with_e0000053(okta: OktaKit, param: str, expression: str) -> None:
    with okta.client() as client:
        response = client.get("/api/v1/users", params={param: expression})
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "E0000053" and {"errorSummary", "errorLink", "errorId", "errorCauses"} <= set(body)
    assert response.headers["x-okta-request-id"]


def test_search_takes_any_profile_attribute_without_case(okta: OktaKit) -> None:
    with okta.client() as client:
        found = client.get("/api/v1/users", params={"search": 'profile.department eq "sales"', "limit": "200"})
    assert found.status_code == 200
    assert found.json() and all(u["profile"]["department"] == "Sales" for u in found.json())


def test_changes_move_last_updated_and_last_membership_updated(okta: OktaKit) -> None:
    sandbox = okta.sandbox
    uid = sorted(sandbox.users)[0]
    gid = next(g for g, v in sandbox.groups.items() if v["type"] == "OKTA_GROUP")
    user_before, group_before = sandbox.users[uid]["lastUpdated"], dict(sandbox.groups[gid])
    newest = max(u["lastUpdated"] for u in sandbox.users.values())
    sandbox.update_user(uid, {"title": "CTO"})
    sandbox.change_members(gid, add=[uid] if uid not in sandbox.members[gid] else [], remove=[])
    sandbox.change_members(gid, remove=[uid])
    assert sandbox.users[uid]["lastUpdated"] > user_before
    assert sandbox.groups[gid]["lastMembershipUpdated"] > group_before["lastMembershipUpdated"]
    assert sandbox.groups[gid]["lastUpdated"] == group_before["lastUpdated"]
    with okta.client() as client:
        stamp = newest
        changed = client.get("/api/v1/users", params={"filter": f'lastUpdated gt "{stamp}"'}).json()
    assert [u["id"] for u in changed] == [uid]


def test_delete_deactivates_first_and_the_system_log_keeps_the_permanent_delete(okta: OktaKit) -> None:
    sandbox = okta.sandbox
    uid = next(u for u, v in sandbox.users.items() if v["status"] == "ACTIVE")
    assert sandbox.delete_user(uid)["status"] == "DEPROVISIONED"
    assert sandbox.delete_user(uid)["deleted"] is True
    with okta.client() as client:
        since = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3600))
        bounded = client.get(
            "/api/v1/logs",
            params={"since": since, "until": "2100-01-01T00:00:00.000Z", "filter": f'target.id eq "{uid}"'},
        )
        assert [e["eventType"] for e in bounded.json()][-2:] == [
            "user.lifecycle.delete.initiated",
            "user.lifecycle.delete.completed",
        ]
        assert "next" not in bounded.links
        polling = client.get("/api/v1/logs", params={"since": since})
        assert "next" in polling.links
        assert client.get(f"/api/v1/users/{uid}").json()["errorCode"] == "E0000007"


def test_the_rate_limit_counts_down_and_then_answers_e0000047(okta: OktaKit) -> None:
    okta.sandbox.behaviour.rate_limit = 3
    with okta.client() as client:
        answers = [client.get("/api/v1/groups") for _ in range(4)]
    assert [a.headers["x-rate-limit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[3].status_code == 429 and answers[3].json()["errorCode"] == "E0000047"
    assert int(answers[3].headers["x-rate-limit-reset"]) >= int(time.time())


def test_the_token_endpoint_verifies_the_client_assertion(okta: OktaKit) -> None:
    pem = make_private_key()
    okta.sandbox.register_key(okta.sandbox.client_id, pem)
    good = token_request(okta, assertion(okta, pem))
    assert good.status_code == 200 and good.json()["token_type"] == "Bearer"
    assert good.json()["expires_in"] == 3600
    now = int(time.time())
    refusals = {
        "audience": assertion(okta, pem, aud=f"{okta.url}/oauth2/default/v1/token"),
        "iss and sub": assertion(okta, pem, sub="someone-else"),
        "expired": assertion(okta, pem, exp=now - 10),
        "too far": assertion(okta, pem, exp=now + 7200),
        "signature": assertion(okta, make_private_key()),
    }
    for what, bad in refusals.items():
        refused = token_request(okta, bad)
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client"), what
    replay = assertion(okta, pem)
    assert token_request(okta, replay).status_code == 200
    assert "already been used" in token_request(okta, replay).json()["error_description"]
    okta.sandbox.set_permissions(client_id=okta.sandbox.client_id, scopes=["okta.users.read"])
    scoped = token_request(okta, assertion(okta, pem), scope="okta.users.read okta.groups.read")
    assert (scoped.status_code, scoped.json()["error"]) == (400, "invalid_scope")


def test_a_token_without_a_scope_gets_a_bare_403_with_its_challenge(okta: OktaKit) -> None:
    pem = make_private_key()
    okta.sandbox.register_key(okta.sandbox.client_id, pem)
    token = token_request(okta, assertion(okta, pem), scope="okta.users.read").json()["access_token"]
    response = httpx.get(f"{okta.url}/api/v1/groups", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and not response.content
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert 'scope="okta.groups.read"' in response.headers["www-authenticate"]


def test_the_commands_change_a_running_sandbox(okta: OktaKit) -> None:
    runner = CliRunner()
    uid = next(u for u, v in okta.sandbox.users.items() if v["status"] == "ACTIVE")
    login = okta.sandbox.users[uid]["profile"]["login"]
    for args in (
        ["add-user", "--first-name", "Ada", "--last-name", "Lovelace"],
        ["suspend-user", login],
        ["update-user", uid, "--set", "title=CTO"],
        ["fault", "throttle", "--count", "2"],
    ):
        result = runner.invoke(okta_app, [*args, "--url", okta.url])
        assert result.exit_code == 0, result.output
    assert any(u["profile"]["firstName"] == "Ada" for u in okta.sandbox.users.values())
    assert okta.sandbox.users[uid]["status"] == "SUSPENDED"
    assert okta.sandbox.users[uid]["profile"]["title"] == "CTO"
    assert len(okta.sandbox.faults) == 1 and okta.sandbox.faults[0].count == 2
    missing = runner.invoke(okta_app, ["suspend-user", "nobody@nowhere", "--url", okta.url])
    assert missing.exit_code == 3 and "nobody@nowhere" in missing.output


def test_the_demo_sandbox_serves_a_directory_document() -> None:
    assert SANDBOX.start_demo is not None
    demo = SANDBOX.start_demo()
    try:
        document = demo.document
        assert document["provider"] == "okta"
        response = httpx.get(
            f"{document['connection']['org_url']}/api/v1/users",
            headers={"Authorization": f"SSWS {document['connection']['api_token']}"},
        )
        # The first page of list-all: 200 users less the deactivated ones it leaves out.
        assert response.status_code == 200 and 190 <= len(response.json()) < 200
    finally:
        demo.server.stop()
