"""The Graph sandbox on the wire: each fact of provider-apis.md §1 it must reproduce."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from accessiq.sandbox.entra import USER_DEFAULT_PROPERTIES, EntraSandbox, Fault

from ..connectors.graph_kit import TEST_DEPARTED, GraphKit


def token_request(graph: GraphKit, tenant: str | None = None, **form: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": graph.sandbox.client_id,
        "client_secret": graph.sandbox.client_secret,
        "scope": "https://graph.microsoft.com/.default",
        **form,
    }
    return httpx.post(f"{graph.url}/{tenant or graph.sandbox.tenant_id}/oauth2/v2.0/token", data=data)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return result


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def pages(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every page of a round, following nextLinks unchanged."""
    out = []
    next_url: str | None = url
    while next_url:
        response = client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        out.append(body)
        next_url = body.get("@odata.nextLink")
    return out


# ------------------------------------------------------------------ token endpoint


def test_token_success_has_the_documented_shape(graph: GraphKit) -> None:
    response = token_request(graph, tenant=graph.sandbox.tenant_domain)
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert claims(body["access_token"])["roles"] == ["GroupMember.Read.All", "User.Read.All"]
    assert claims(body["access_token"])["tid"] == graph.sandbox.tenant_id


@pytest.mark.parametrize(
    ("case", "status", "error", "code"),
    [
        ("tenant", 400, "invalid_request", 90002),
        ("client", 400, "unauthorized_client", 700016),
        ("secret", 401, "invalid_client", 7000215),
        ("scope", 400, "invalid_scope", 1002012),
        ("resource", 400, "invalid_resource", 500011),
    ],
)
def test_token_errors_have_the_aadsts_shape(
    graph: GraphKit, case: str, status: int, error: str, code: int
) -> None:
    form = {
        "tenant": {},
        "client": {"client_id": "00000000-0000-0000-0000-00000000dead"},
        "secret": {"client_secret": "wrong"},
        "scope": {"scope": "User.Read"},
        "resource": {"scope": "https://management.azure.com/.default"},
    }[case]
    response = token_request(graph, tenant="fabrikam.example" if case == "tenant" else None, **form)
    body = response.json()
    assert response.status_code == status
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_client_secret_basic_is_accepted_too(graph: GraphKit) -> None:
    response = httpx.post(
        f"{graph.url}/{graph.sandbox.tenant_id}/oauth2/v2.0/token",
        auth=(graph.sandbox.client_id, graph.sandbox.client_secret),
        data={"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"},
    )
    assert response.status_code == 200, response.text


def test_openid_configuration_names_the_tenant_guid(graph: GraphKit) -> None:
    response = httpx.get(f"{graph.url}/{graph.sandbox.tenant_domain}/v2.0/.well-known/openid-configuration")
    assert response.json()["token_endpoint"] == f"{graph.url}/{graph.sandbox.tenant_id}/oauth2/v2.0/token"
    unknown = httpx.get(f"{graph.url}/nobody.example/v2.0/.well-known/openid-configuration")
    assert unknown.status_code == 400 and unknown.json()["error_codes"] == [90002]


def test_an_app_without_consent_gets_a_token_without_roles(graph: GraphKit) -> None:
    graph.sandbox.set_permissions(graph.sandbox.client_id, [])
    assert "roles" not in claims(token_request(graph).json()["access_token"])


# ------------------------------------------------------------------ errors and auth on Graph


def test_errors_use_the_graph_envelope_with_inner_error(graph: GraphKit) -> None:
    response = httpx.get(f"{graph.url}/v1.0/users", headers={"client-request-id": "abc-123"})
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "InvalidAuthenticationToken" and error["message"] == "Access token is empty."
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["client-request-id"] == "abc-123"
    forged = httpx.get(f"{graph.url}/v1.0/users", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401


def test_a_missing_permission_is_authorization_request_denied(graph: GraphKit) -> None:
    graph.sandbox.set_permissions(graph.sandbox.client_id, ["User.Read.All"])
    with graph.client() as client:
        assert client.get("/v1.0/users").status_code == 200
        denied = client.get("/v1.0/groups/delta")
    assert denied.status_code == 403
    assert error_of(denied)["code"] == "Authorization_RequestDenied"
    assert error_of(denied)["message"] == "Insufficient privileges to complete the operation."


def test_revoked_tokens_are_expired(graph: GraphKit) -> None:
    with graph.client() as client:
        graph.sandbox.revoke_tokens()
        response = client.get("/v1.0/users")
    assert response.status_code == 401 and "expired" in error_of(response)["message"]


# ------------------------------------------------------------------ lists


@pytest.mark.parametrize("top", ["0", "1000", "-5", "ten"])
def test_top_outside_1_to_999_is_refused_with_the_exact_message(graph: GraphKit, top: str) -> None:
    with graph.client() as client:
        response = client.get(f"/v1.0/users?$top={top}")
    assert response.status_code == 400
    assert error_of(response) | {"innerError": None} == {
        "code": "Request_UnsupportedQuery",
        "innerError": None,
        "message": f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
    }


def test_top_999_and_1_are_accepted(graph: GraphKit) -> None:
    with graph.client() as client:
        assert len(client.get("/v1.0/users?$top=999").json()["value"]) == len(
            graph.sandbox.snapshot()["users"]
        )
        assert len(client.get("/v1.0/users?$top=1").json()["value"]) == 1


def test_without_select_a_user_has_the_eleven_default_properties(graph: GraphKit) -> None:
    with graph.client() as client:
        user = client.get("/v1.0/users?$top=1").json()["value"][0]
    assert set(user) == set(USER_DEFAULT_PROPERTIES) and len(user) == 11


@pytest.mark.parametrize("field", ["aboutMe", "birthday", "hireDate", "skills", "mailboxSettings"])
def test_non_collection_properties_are_501_on_lists(graph: GraphKit, field: str) -> None:
    with graph.client() as client:
        response = client.get(f"/v1.0/users?$select=id,{field}")
        delta = client.get(f"/v1.0/users/delta?$select=id,{field}")
    for answer in (response, delta):
        assert answer.status_code == 501
        assert error_of(answer)["code"] == "NotImplemented"
        assert error_of(answer)["message"] == "This operation target is not yet supported."


def test_an_unknown_property_is_a_400_naming_it(graph: GraphKit) -> None:
    with graph.client() as client:
        response = client.get("/v1.0/users?$select=id,departmnt")
    assert response.status_code == 400
    assert "departmnt" in error_of(response)["message"]


def test_list_next_links_carry_all_options_and_must_be_used_unchanged(graph: GraphKit) -> None:
    with graph.client() as client:
        bodies = pages(client, "/v1.0/users?$select=id,displayName&$top=7")
        first_next = bodies[0]["@odata.nextLink"]
        altered = client.get(first_next.replace("$select=id,displayName", "$select=id"))
    assert "$select=id,displayName" in first_next and "$top=7" in first_next and "$skiptoken=" in first_next
    assert "@odata.nextLink" not in bodies[-1]
    assert sum(len(b["value"]) for b in bodies) == len(graph.sandbox.snapshot()["users"])
    assert all(set(u) == {"id", "displayName"} for b in bodies for u in b["value"])
    assert altered.status_code == 400


def test_advanced_queries_need_consistency_level_which_next_links_do_not_carry(graph: GraphKit) -> None:
    with graph.client() as client:
        refused = client.get('/v1.0/users?$search="displayName:a"')
        assert refused.status_code == 400
        assert error_of(refused)["message"] == (
            "Request with $search query parameter only works through MSGraph "
            "with a special request header: 'ConsistencyLevel: eventual'"
        )
        eventual = {"ConsistencyLevel": "eventual"}
        first = client.get("/v1.0/users?$count=true&$top=10", headers=eventual).json()
        assert first["@odata.count"] == len(graph.sandbox.snapshot()["users"])
        assert client.get(first["@odata.nextLink"]).status_code == 400
        second = client.get(first["@odata.nextLink"], headers=eventual).json()
        assert "@odata.count" not in second


def test_members_are_direct_typed_and_transitive_members_flat(graph: GraphKit) -> None:
    everyone = next(g for g in graph.sandbox.population.groups if g.name == "All Staff")
    snapshot = graph.sandbox.snapshot()
    with graph.client() as client:
        direct = pages(client, f"/v1.0/groups/{everyone.id}/members?$select=id")
        flat = pages(client, f"/v1.0/groups/{everyone.id}/transitiveMembers?$select=id&$top=999")
        cast = client.get(f"/v1.0/groups/{everyone.id}/transitiveMembers/microsoft.graph.user")
    direct_items = [m for page in direct for m in page["value"]]
    assert {m["@odata.type"] for m in direct_items} <= {"#microsoft.graph.user", "#microsoft.graph.group"}
    assert {m["id"] for m in direct_items} == set(snapshot["groups"][everyone.id]["users"]) | set(
        snapshot["groups"][everyone.id]["groups"]
    )
    flat_users = {
        m["id"] for page in flat for m in page["value"] if m["@odata.type"] == "#microsoft.graph.user"
    }
    assert len(flat_users) > len(snapshot["groups"][everyone.id]["users"])
    assert cast.status_code == 400


# ------------------------------------------------------------------ delta


def test_delta_pages_vary_include_empty_ones_and_end_with_one_delta_link(graph: GraphKit) -> None:
    graph.sandbox.behaviour.empty_page_rate = 0.4
    with graph.client() as client:
        bodies = pages(client, "/v1.0/users/delta?$select=id,displayName,accountEnabled")
    sizes = [len(b["value"]) for b in bodies]
    assert len(set(sizes)) > 2, sizes
    assert any(size == 0 and "@odata.nextLink" in b for size, b in zip(sizes, bodies, strict=True))
    for body in bodies[:-1]:
        assert "@odata.nextLink" in body and "@odata.deltaLink" not in body
        assert "?$skiptoken=" in body["@odata.nextLink"] and "select" not in body["@odata.nextLink"]
    assert "@odata.deltaLink" in bodies[-1] and "@odata.nextLink" not in bodies[-1]
    token = bodies[-1]["@odata.deltaLink"].split("$deltatoken=")[1]
    assert (
        "displayName" not in token
        and "accountEnabled" not in base64.urlsafe_b64encode(token.encode()).decode()
    )


def test_delta_honours_select_and_tracks_only_the_selected_properties(graph: GraphKit) -> None:
    sandbox = graph.sandbox
    with graph.client() as client:
        first = pages(client, "/v1.0/users/delta?$select=displayName,accountEnabled")
        items = [u for b in first for u in b["value"] if "@removed" not in u]
        assert all(set(u) <= {"id", "displayName", "accountEnabled"} for u in items)
        users = sorted(sandbox.snapshot()["users"])
        sandbox.update_user(users[0], {"jobTitle": "Not tracked"})
        sandbox.update_user(users[1], {"displayName": "Tracked"})
        later = pages(client, first[-1]["@odata.deltaLink"])
    changed = [u for b in later for u in b["value"]]
    assert [(u["id"], u["displayName"]) for u in changed] == [(users[1], "Tracked")]
    # A changed object comes back with all its selected properties, changed or not.
    assert set(changed[0]) == {"id", "displayName", "accountEnabled"}


def test_removed_entries_appear_in_the_first_round_and_later_rounds(graph: GraphKit) -> None:
    sandbox = graph.sandbox
    with graph.client() as client:
        first = pages(client, "/v1.0/users/delta?$select=displayName")
        removed = [u for b in first for u in b["value"] if "@removed" in u]
        assert len(removed) == TEST_DEPARTED
        assert all(u["@removed"] == {"reason": "changed"} and set(u) == {"id", "@removed"} for u in removed)
        users = sorted(sandbox.snapshot()["users"])
        sandbox.delete_user(users[0])
        sandbox.delete_user(users[1], permanent=True)
        later = pages(client, first[-1]["@odata.deltaLink"])
    entries = {u["id"]: u["@removed"]["reason"] for b in later for u in b["value"]}
    assert entries == {users[0]: "changed", users[1]: "deleted"}


def test_objects_created_and_deleted_between_rounds_never_appear(graph: GraphKit) -> None:
    with graph.client() as client:
        link = pages(client, "/v1.0/users/delta?$select=displayName")[-1]["@odata.deltaLink"]
        created = graph.sandbox.add_user()
        graph.sandbox.delete_user(created["id"], permanent=True)
        assert [u for b in pages(client, link) for u in b["value"]] == []


def test_members_delta_is_split_over_consecutive_pages_with_replays(graph: GraphKit) -> None:
    graph.sandbox.behaviour.member_budget_min = 2
    graph.sandbox.behaviour.member_budget_max = 4
    graph.sandbox.behaviour.replay_rate = 0.5
    with graph.client() as client:
        # Empty pages may sit between two slices; consecutive means among pages with content.
        bodies = [b for b in pages(client, "/v1.0/groups/delta?$select=displayName,members") if b["value"]]
    appearances: dict[str, list[int]] = {}
    entries: dict[str, list[str]] = {}
    for index, body in enumerate(bodies):
        for item in body["value"]:
            appearances.setdefault(item["id"], []).append(index)
            entries.setdefault(item["id"], []).extend(m["id"] for m in item.get("members@delta", []))
            if "displayName" not in item:
                assert set(item) == {"id", "members@delta"}
    split = [gid for gid, where in appearances.items() if len(where) > 1]
    assert split, "some group spans several pages"
    for gid in split:
        where = sorted(set(appearances[gid]))
        assert where == list(range(where[0], where[-1] + 1)) or len(where) < len(appearances[gid]), where
    assert any(len(v) != len(set(v)) for v in entries.values()), "some member entries are replayed"
    snapshot = graph.sandbox.snapshot()["groups"]
    for gid, members in entries.items():
        assert set(members) == set(snapshot[gid]["users"]) | set(snapshot[gid]["groups"])


def test_membership_removals_are_typed_entries_with_removed(graph: GraphKit) -> None:
    group = graph.sandbox.population.groups[-1]
    member = graph.sandbox.snapshot()["groups"][group.id]["users"][0]
    with graph.client() as client:
        link = pages(client, "/v1.0/groups/delta?$select=displayName,members")[-1]["@odata.deltaLink"]
        graph.sandbox.change_members(group.id, remove=[member])
        items = [i for b in pages(client, link) for i in b["value"]]
    assert items == [
        {
            "id": group.id,
            "displayName": group.name,
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": member, "@removed": {"reason": "deleted"}}
            ],
        }
    ]


def test_sync_from_now_returns_only_a_delta_link(graph: GraphKit) -> None:
    with graph.client() as client:
        body = client.get("/v1.0/users/delta?$deltatoken=latest&$select=displayName").json()
        assert body["value"] == [] and "@odata.deltaLink" in body and "@odata.nextLink" not in body
        uid = sorted(graph.sandbox.snapshot()["users"])[0]
        graph.sandbox.update_user(uid, {"displayName": "Now"})
        later = [u for b in pages(client, body["@odata.deltaLink"]) for u in b["value"]]
    assert later == [{"id": uid, "displayName": "Now"}]


def test_delta_filter_by_ids_and_unsupported_options(graph: GraphKit) -> None:
    ids = sorted(graph.sandbox.snapshot()["users"])[:3]
    clause = " or ".join(f"id eq '{i}'" for i in ids)
    with graph.client() as client:
        got = [u["id"] for b in pages(client, f"/v1.0/users/delta?$filter={clause}") for u in b["value"]]
        assert sorted(got) == ids
        too_many = " or ".join(f"id eq '{i}'" for i in range(51))
        assert client.get(f"/v1.0/users/delta?$filter={too_many}").status_code == 400
        for option in ("$top=5", "$expand=manager", "$orderby=displayName"):
            response = client.get(f"/v1.0/users/delta?{option}")
            assert response.status_code == 400 and error_of(response)["code"] == "Request_UnsupportedQuery"


@pytest.mark.parametrize(
    ("mode", "status", "case", "code"),
    [
        ("syncStateNotFound", 400, "camel", "syncStateNotFound"),
        ("syncStateNotFound", 400, "pascal", "SyncStateNotFound"),
        ("resyncRequired", 400, "camel", "resyncRequired"),
        ("resyncRequired", 410, "camel", "resyncRequired"),
        ("location", 410, "camel", None),
    ],
)
def test_all_three_delta_expiry_answers(
    graph: GraphKit, mode: str, status: int, case: str, code: str | None
) -> None:
    with graph.client() as client:
        link = pages(client, "/v1.0/users/delta")[-1]["@odata.deltaLink"]
        graph.sandbox.expire_delta_tokens(mode, status=status, code_case=case)
        response = client.get(link)
    assert response.status_code == status
    if code:
        assert error_of(response)["code"] == code
    if mode == "syncStateNotFound":
        assert error_of(response)["message"] == (
            "The sync state generation is not found. The delta token is "
            "expired and data must be synchronized again."
        )
    if mode == "location":
        assert response.headers["location"] == f"{graph.url}/v1.0/users/delta?$deltatoken="


def test_a_tampered_token_is_a_bad_request(graph: GraphKit) -> None:
    with graph.client() as client:
        link = pages(client, "/v1.0/users/delta")[-1]["@odata.deltaLink"]
        response = client.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))
    assert response.status_code == 400 and error_of(response)["code"] == "Request_BadRequest"


# ------------------------------------------------------------------ throttling and faults


def test_a_throttled_request_gets_429_with_retry_after_and_throttle_headers(graph: GraphKit) -> None:
    graph.sandbox.inject(Fault(kind="throttle", count=1, retry_after=7))
    with graph.client() as client:
        throttled = client.get("/v1.0/users")
        after = client.get("/v1.0/users")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"
    assert error_of(throttled)["code"] == "TooManyRequests"
    assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert throttled.headers["x-ms-throttle-scope"].startswith("Tenant_Application/Read/")
    assert after.status_code == 200


def test_the_resource_unit_bucket_throttles_and_every_answer_states_its_cost(graph: GraphKit) -> None:
    with graph.client() as client:
        assert client.get("/v1.0/users").headers["x-ms-resource-unit"] == "2"
        assert client.get("/v1.0/users?$select=id&$top=5").headers["x-ms-resource-unit"] == "1"
        graph.sandbox.behaviour.ru_limit_per_10s = 4
        statuses = [client.get("/v1.0/users").status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429


# ------------------------------------------------------------------ admin endpoint


def test_the_admin_endpoint_changes_the_directory(graph: GraphKit) -> None:
    info = graph.admin("GET", "/info").json()
    assert info["client_secret"] == graph.sandbox.client_secret and info["graph_url"] == graph.url
    created = graph.admin("POST", "/users", {"properties": {"givenName": "Zed", "jobTitle": "Intern"}})
    assert created.status_code == 201
    uid, upn = created.json()["id"], created.json()["userPrincipalName"]
    assert graph.admin("PATCH", f"/users/{upn}", {"jobTitle": "Engineer"}).json()["jobTitle"] == "Engineer"
    assert graph.admin("POST", f"/users/{uid}/disable").json()["accountEnabled"] is False
    group = graph.admin("POST", "/groups", {"displayName": "Sandbox Team"}).json()
    members = graph.admin("POST", f"/groups/{group['id']}/members", {"add": [uid, "All Staff"]}).json()
    assert set(members["members"]) >= {uid}
    assert graph.admin("DELETE", f"/users/{uid}").json() == {"id": uid, "permanent": False}
    assert uid in graph.sandbox.snapshot()["removed_users"]
    assert graph.admin("POST", f"/users/{uid}/restore").status_code == 200
    assert uid in graph.sandbox.snapshot()["groups"][group["id"]]["users"]
    assert graph.admin("PATCH", f"/users/{uid}", {"bogus": 1}).status_code == 400
    assert graph.admin("POST", "/users/nobody@nowhere/disable").status_code == 404


def test_the_admin_endpoint_injects_faults(graph: GraphKit) -> None:
    assert graph.admin("POST", "/faults", {"kind": "error", "count": 1}).json()["status"] == 503
    assert graph.admin("POST", "/faults", {"kind": "nope", "bogus": 1}).status_code == 400
    with graph.client() as client:
        assert client.get("/v1.0/users").status_code == 503
        link = pages(client, "/v1.0/groups/delta")[-1]["@odata.deltaLink"]
        graph.admin("POST", "/delta/expire", {"mode": "resyncRequired", "status": 400})
        assert client.get(link).status_code == 400
        graph.admin("PUT", f"/apps/{graph.sandbox.client_id}/permissions", {"roles": []})
        assert client.get("/v1.0/users").status_code == 401  # revoked: the client must fetch a new token
    with graph.client() as client:
        assert client.get("/v1.0/users").status_code == 403
    stats = graph.admin("GET", "/stats").json()
    assert stats["by_endpoint"]["GET /v1.0/users"] >= 3
    assert graph.admin("POST", "/reset").status_code == 200
    assert graph.sandbox.apps[graph.sandbox.client_id].roles == {"User.Read.All", "GroupMember.Read.All"}


# ------------------------------------------------------------------ seeding


def test_the_same_seed_gives_the_same_directory() -> None:
    first, second = EntraSandbox(50, 10, seed=5), EntraSandbox(50, 10, seed=5)
    assert first.snapshot() == second.snapshot()
    assert (first.tenant_id, first.client_id, first.client_secret) == (
        second.tenant_id,
        second.client_id,
        second.client_secret,
    )
    assert EntraSandbox(50, 10, seed=6).snapshot() != first.snapshot()


def test_ten_thousand_users_and_five_hundred_groups_seed() -> None:
    sandbox = EntraSandbox(10_000, 500, seed=1)
    snapshot = sandbox.snapshot()
    assert len(snapshot["users"]) == 10_000 and len(snapshot["groups"]) == 500
    assert len(snapshot["removed_users"]) == 100
