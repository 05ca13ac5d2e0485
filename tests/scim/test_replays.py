"""Replays of the request sequences Entra ID's and Okta's provisioning clients send.

Each ends in exactly the users, organizations and roles the directory's settings give the
people the client pushed (default organization `acme` as member, group Engineering -> `acme-eng`
admin), and in one push run per write in the sync log.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from accessiq.store.database import Store

from .conftest import ENTERPRISE, GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA, Scim, issue, push_runs, users


def _patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def _entra_user(upn: str, given: str, family: str, department: str) -> dict[str, Any]:
    """A create as Entra's default attribute mappings send it."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": upn.split("@")[0],
        "userName": upn,
        "active": True,
        "displayName": f"{given} {family}",
        "emails": [{"primary": True, "type": "work", "value": upn}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        ENTERPRISE: {"department": department},
    }


def test_entra_provisioning_sequence(app_client: TestClient, store: Store, directory: int) -> None:
    app_client.headers.pop("user-agent", None)  # Entra sends none
    scim = Scim(app_client, directory, issue(store, directory))
    ids: dict[str, str] = {}
    for upn, given, family in (
        ("alice@contoso.com", "Alice", "Liddell"),
        ("bob@contoso.com", "Bob", "Stone"),
        ("carol@contoso.com", "Carol", "Vega"),
    ):
        # Entra looks the user up by userName before it creates one.
        found = scim("GET", "/Users", params={"filter": f'userName eq "{upn}"'})
        assert found.status_code == 200 and found.json()["totalResults"] == 0
        created = scim("POST", "/Users", _entra_user(upn, given, family, "R&D"))
        assert created.status_code == 201, created.text
        assert created.headers["content-type"].startswith("application/scim+json")
        assert created.headers["location"].endswith(f"/Users/{created.json()['id']}")
        ids[upn] = created.json()["id"]
    # A second create of the same userName is a uniqueness conflict.
    again = scim("POST", "/Users", _entra_user("ALICE@contoso.com", "Alice", "Liddell", "R&D"))
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    # Found again by userName (case-insensitively) and by externalId.
    assert scim("GET", "/Users", params={"filter": 'userName eq "Alice@Contoso.com"'}).json()["totalResults"] == 1
    assert scim("GET", "/Users", params={"filter": 'externalId eq "bob"'}).json()["Resources"][0]["id"] == ids[
        "bob@contoso.com"
    ]

    assert scim("GET", "/Groups", params={"filter": 'displayName eq "Engineering"'}).json()["totalResults"] == 0
    group = scim("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "externalId": "eng"})
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    added = scim(
        "PATCH",
        f"/Groups/{group_id}",
        _patch({"op": "Add", "path": "members", "value": [{"value": ids[u]} for u in sorted(ids)]}),
    )
    assert added.status_code == 200, added.text

    # PATCH without a path, carrying a dict of attributes; and a filtered path for an email type
    # the user does not have yet, which creates it.
    renamed = scim(
        "PATCH",
        f"/Users/{ids['alice@contoso.com']}",
        _patch(
            {"op": "Replace", "value": {"name.givenName": "Alicia", "displayName": "Alicia Liddell"}},
            {"op": "Add", "path": 'emails[type eq "home"].value', "value": "alicia@example.org"},
        ),
    )
    assert renamed.status_code == 200, renamed.text
    assert {"value": "alicia@example.org", "type": "home"} in renamed.json()["emails"]
    # `active` as the string "False".
    disabled = scim(
        "PATCH", f"/Users/{ids['bob@contoso.com']}", _patch({"op": "Replace", "path": "active", "value": "False"})
    )
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    # Members removed Entra's way: path `members` with the values to remove; the others stay.
    removed = scim(
        "PATCH",
        f"/Groups/{group_id}",
        _patch({"op": "Remove", "path": "members", "value": [{"value": ids["alice@contoso.com"]}]}),
    )
    assert removed.status_code == 200, removed.text
    assert {m["value"] for m in removed.json()["members"]} == {ids["bob@contoso.com"], ids["carol@contoso.com"]}

    assert users(store, directory) == {
        "alice@contoso.com": {"status": "active", "orgs": {"acme": "member"}, "groups": [], "given_name": "Alicia"},
        "bob@contoso.com": {"status": "deactivated", "orgs": {}, "groups": [], "given_name": "Bob"},
        "carol@contoso.com": {
            "status": "active",
            "orgs": {"acme": "member", "acme-eng": "admin"},
            "groups": ["Engineering"],
            "given_name": "Carol",
        },
    }
    log = push_runs(store, directory)
    # One run per write that changed something: 3 creates, the group, its members, the rename,
    # the deactivation and the removal.
    assert [r["trigger"] for r in log] == ["push"] * 8
    assert all(r["status"] in ("succeeded", "succeeded_with_errors") for r in log)
    assert [r["counts"]["users_created"] for r in log[:3]] == [1, 1, 1]
    assert log[4]["counts"]["memberships_added"] >= 3
    assert log[6]["counts"]["users_deactivated"] == 1
    assert log[7]["counts"]["memberships_removed"] >= 1


def test_entra_remove_of_members_without_value_clears_only_when_it_says_so(
    app_client: TestClient, store: Store, directory: int
) -> None:
    scim = Scim(app_client, directory, issue(store, directory))
    a = scim("POST", "/Users", _entra_user("a@contoso.com", "A", "A", "x")).json()["id"]
    b = scim("POST", "/Users", _entra_user("b@contoso.com", "B", "B", "x")).json()["id"]
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": [{"value": a}, {"value": b}]}
    group = scim("POST", "/Groups", body).json()["id"]
    # A Remove naming one member removes that one...
    one = scim("PATCH", f"/Groups/{group}", _patch({"op": "Remove", "path": "members", "value": [{"value": a}]}))
    assert [m["value"] for m in one.json()["members"]] == [b]
    # ...and one without a value clears the group, as RFC 7644 §3.5.2.2 says it does.
    every = scim("PATCH", f"/Groups/{group}", _patch({"op": "remove", "path": "members"}))
    assert "members" not in every.json()
    assert users(store, directory)["b@contoso.com"]["orgs"] == {"acme": "member"}


def _okta_user(login: str, given: str, family: str, active: bool = True) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": login,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": f"00u{given.lower()}",
        "groups": [],
        "password": "an initial password Okta sends",
        "active": active,
    }


def test_okta_provisioning_sequence(app_client: TestClient, store: Store, directory: int) -> None:
    scim = Scim(app_client, directory, issue(store, directory))
    ids: dict[str, str] = {}
    for login, given, family in (("dana@okta.example", "Dana", "Ito"), ("eve@okta.example", "Eve", "Moss")):
        lookup = scim("GET", "/Users", params={"filter": f'userName eq "{login}"', "startIndex": 1, "count": 100})
        assert lookup.json()["totalResults"] == 0
        created = scim("POST", "/Users", _okta_user(login, given, family))
        assert created.status_code == 201, created.text
        assert "password" not in created.json()  # write-only
        ids[login] = created.json()["id"]
        assert scim("GET", f"/Users/{ids[login]}").json()["userName"] == login

    # Okta's group push: create with members, rename through PATCH with `id` in the value, then
    # batched member changes.
    group = scim(
        "POST",
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Eng", "members": [{"value": ids["dana@okta.example"]}]},
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    renamed = scim(
        "PATCH",
        f"/Groups/{group_id}",
        _patch({"op": "replace", "value": {"id": group_id, "displayName": "Engineering"}}),
    )
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "Engineering"
    members = scim(
        "PATCH",
        f"/Groups/{group_id}",
        _patch(
            {"op": "add", "path": "members", "value": [{"value": ids["eve@okta.example"], "display": "eve"}]},
            {"op": "remove", "path": f'members[value eq "{ids["dana@okta.example"]}"]'},
        ),
    )
    assert [m["value"] for m in members.json()["members"]] == [ids["eve@okta.example"]]

    # A whole-user PUT, then a PUT with active false (Okta's deactivation).
    etag = scim("GET", f"/Users/{ids['eve@okta.example']}").headers["etag"]
    put = scim("PUT", f"/Users/{ids['eve@okta.example']}", _okta_user("eve@okta.example", "Evelyn", "Moss"))
    assert put.status_code == 200 and put.headers["etag"] != etag
    stale = scim(
        "PUT",
        f"/Users/{ids['eve@okta.example']}",
        _okta_user("eve@okta.example", "Eve", "Moss"),
        headers={"If-Match": etag},
    )
    assert stale.status_code == 412
    before = users(store, directory)["eve@okta.example"]
    assert before == {
        "status": "active",
        "orgs": {"acme": "member", "acme-eng": "admin"},
        "groups": ["Engineering"],
        "given_name": "Evelyn",
    }
    off = scim("PUT", f"/Users/{ids['eve@okta.example']}", _okta_user("eve@okta.example", "Evelyn", "Moss", False))
    assert off.status_code == 200 and off.json()["active"] is False

    assert users(store, directory) == {
        "dana@okta.example": {"status": "active", "orgs": {"acme": "member"}, "groups": [], "given_name": "Dana"},
        "eve@okta.example": {"status": "deactivated", "orgs": {}, "groups": [], "given_name": "Evelyn"},
    }
    log = push_runs(store, directory)
    assert {r["trigger"] for r in log} == {"push"}
    assert log[-1]["counts"]["users_deactivated"] == 1
    # Back again: Okta reactivates with a PUT active true; sync deactivated them, so sync reactivates.
    on = scim("PUT", f"/Users/{ids['eve@okta.example']}", _okta_user("eve@okta.example", "Evelyn", "Moss", True))
    assert on.status_code == 200
    assert users(store, directory)["eve@okta.example"]["orgs"] == {"acme": "member", "acme-eng": "admin"}
    # DELETE: the user is deactivated here (deactivation: deactivate), and gone from SCIM.
    assert scim("DELETE", f"/Users/{ids['dana@okta.example']}").status_code == 204
    assert scim("GET", f"/Users/{ids['dana@okta.example']}").status_code == 404
    assert users(store, directory)["dana@okta.example"]["status"] == "deactivated"
