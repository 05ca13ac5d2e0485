"""What a holder of a directory's SCIM token can and cannot do with hostile input."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from accessiq.store.database import Store

from .conftest import GROUP_SCHEMA, PATCH_SCHEMA, Scim, issue, make_directory, user_body, users


def _error(answer: object, status: int, scim_type: str | None = None) -> dict[str, object]:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body["scimType"] == scim_type
    return body


def test_oversized_values_and_bodies_are_refused(scim: Scim, store: Store, directory: int) -> None:
    _error(scim("POST", "/Users", user_body("a" * 400 + "@example.com")), 400, "invalidValue")
    _error(scim("POST", "/Users", user_body("b@example.com", displayName="x" * 5000)), 400, "invalidValue")
    _error(scim("POST", "/Users", user_body("c@example.com", title="x" * 2_000_000)), 413)
    many = [{"value": f"e{i}@example.com", "type": "other"} for i in range(500)]
    _error(scim("POST", "/Users", {**user_body("d@example.com"), "emails": many}), 400, "invalidValue")
    assert users(store, directory) == {}


def test_malformed_bodies_are_refused(scim: Scim) -> None:
    headers = {"Content-Type": "application/scim+json"}
    _error(scim("POST", "/Users", content=b"{not json", headers=headers), 400, "invalidSyntax")
    _error(scim("POST", "/Users", content=b"[" * 100_000, headers=headers), 400, "invalidSyntax")
    _error(scim("POST", "/Users", ["a list"]), 400, "invalidSyntax")
    _error(scim("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}), 400)


def test_filters_are_parsed_never_interpreted(scim: Scim, app_client: TestClient, store: Store) -> None:
    other = make_directory(store, "Other")
    Scim(app_client, other, issue(store, other))("POST", "/Users", user_body("theirs@example.com"))
    scim("POST", "/Users", user_body("mine@example.com"))
    _error(scim("GET", "/Users", params={"filter": 'userName eq'}), 400, "invalidFilter")
    _error(scim("GET", "/Users", params={"filter": 'userName eq "x") or (1 eq 1'}), 400, "invalidFilter")
    _error(scim("GET", "/Users", params={"filter": "userName pr " * 300}), 400, "invalidFilter")
    # A filter that matches everything matches everything of this directory only.
    everything = scim("GET", "/Users", params={"filter": 'userName pr or not (userName pr)'}).json()
    assert [r["userName"] for r in everything["Resources"]] == ["mine@example.com"]
    assert scim("GET", "/Users", params={"filter": 'userName eq "theirs@example.com"'}).json()["totalResults"] == 0


def test_counts_are_capped(scim: Scim) -> None:
    for n in range(3):
        scim("POST", "/Users", user_body(f"n{n}@example.com"))
    huge = scim("GET", "/Users", params={"count": 10**9}).json()
    assert huge["itemsPerPage"] == 3 and huge["totalResults"] == 3
    page = scim("GET", "/Users", params={"count": 1, "startIndex": 2}).json()
    assert page["startIndex"] == 2 and page["Resources"] == huge["Resources"][1:2]
    assert scim("GET", "/Users", params={"count": -5}).json()["Resources"] == []
    assert scim("GET", "/Users", params={"startIndex": 0}).json()["startIndex"] == 1


def test_pushed_values_are_data_not_templates(scim: Scim, store: Store, directory: int) -> None:
    body = user_body("tpl@example.com")
    body["name"]["givenName"] = "{{ 7 * 7 }}{% for x in range(9) %}x{% endfor %}"
    assert scim("POST", "/Users", body).status_code == 201
    assert users(store, directory)["tpl@example.com"]["given_name"] == body["name"]["givenName"]


def test_another_directorys_resources_are_out_of_reach(scim: Scim, app_client: TestClient, store: Store) -> None:
    other = make_directory(store, "Other")
    theirs = Scim(app_client, other, issue(store, other))("POST", "/Users", user_body("t@example.com")).json()["id"]
    _error(scim("GET", f"/Users/{theirs}"), 404)
    _error(scim("DELETE", f"/Users/{theirs}"), 404)
    patch = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    _error(scim("PATCH", f"/Users/{theirs}", patch), 404)
    # Nor can a group of this directory take their user as a member.
    group = {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": [{"value": theirs}]}
    _error(scim("POST", "/Groups", group), 400, "invalidValue")
    assert users(store, other)["t@example.com"]["status"] == "active"


def test_read_only_attributes_stay_the_servers(scim: Scim) -> None:
    created = scim("POST", "/Users", {**user_body("ro@example.com"), "id": "chosen", "meta": {"version": "x"}}).json()
    assert created["id"] != "chosen" and created["meta"]["version"] != "x"
    patch = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "id", "value": "mine"}]}
    _error(scim("PATCH", f"/Users/{created['id']}", patch), 400)
    assert json.dumps(scim("GET", f"/Users/{created['id']}").json()).count(created["id"]) >= 1
