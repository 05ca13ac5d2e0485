"""/api/v1/directories on SQLite and PostgreSQL: connect, configure, test, map groups, preview, Sync Now."""

from __future__ import annotations

import json
from typing import Any

import pytest
from directory_fixtures import directory_document, seed

from accessiq.services import directories as dirs
from accessiq.services import runs, scim_tokens
from accessiq.store.database import Store

pytestmark = pytest.mark.usefixtures("orgs")


def _create(api: Any, snapshot: Any, **settings: Any) -> dict[str, Any]:
    response = api("POST", "/api/v1/directories", json=directory_document(seed(snapshot), **settings))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_list_show_export(api: Any, snapshot: Any) -> None:
    created = _create(api, snapshot)
    assert created["name"] == "Acme HR"
    assert created["provider"] == "file"
    assert created["group_mappings"] == [{"source_group": "Engineering", "organization": "acme-eng", "role": "admin"}]
    assert created["last_run"] is None
    assert created["setup_step"] is None  # a document is a finished setup; only the wizard leaves one open

    listed = api("GET", "/api/v1/directories")
    assert listed.status_code == 200
    assert [d["id"] for d in listed.json()] == [created["id"]]
    assert listed.headers["X-Total-Count"] == "1"
    assert api("GET", "/api/v1/directories?provider=okta").json() == []

    by_id = api("GET", f"/api/v1/directories/{created['id']}").json()
    by_name = api("GET", "/api/v1/directories/acme%20hr").json()
    assert by_id == by_name

    exported = api("GET", f"/api/v1/directories/{created['id']}/export").json()
    assert exported["connection"] == {"path": str(snapshot.path)}


def test_pagination(api: Any, snapshot: Any) -> None:
    path = seed(snapshot)
    for i in range(3):
        assert api("POST", "/api/v1/directories", json=directory_document(path, name=f"D{i}")).status_code == 201
    first = api("GET", "/api/v1/directories?limit=2")
    assert [d["name"] for d in first.json()] == ["D0", "D1"]
    assert first.headers["X-Next-Offset"] == "2"
    second = api("GET", "/api/v1/directories?limit=2&offset=2")
    assert [d["name"] for d in second.json()] == ["D2"]
    assert "X-Next-Offset" not in second.headers
    bad = api("GET", "/api/v1/directories?limit=0")
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "limit"


def test_errors_share_one_shape(api: Any, snapshot: Any) -> None:
    missing = api("GET", "/api/v1/directories/nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "kind": "not_found",
            "message": "no directory 'nope'",
            "field": None,
            "hint": "see `accessiq directories list`",
        }
    }
    created = _create(api, snapshot)
    duplicate = api("POST", "/api/v1/directories", json=directory_document(snapshot.path))
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["kind"] == "conflict"

    bad_setting = api("PATCH", f"/api/v1/directories/{created['id']}/settings", json={"frequency": "often"})
    assert bad_setting.status_code == 422
    assert bad_setting.json()["error"]["kind"] == "configuration"
    assert bad_setting.json()["error"]["field"] == "settings.frequency"

    unknown_field = api(
        "POST", "/api/v1/directories", json={**directory_document(snapshot.path, name="X"), "colour": "blue"}
    )
    assert unknown_field.status_code == 422
    assert unknown_field.json()["error"]["kind"] == "validation"
    assert unknown_field.json()["error"]["field"] == "colour"

    not_json = api("POST", "/api/v1/directories", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    assert set(not_json.json()) == {"error"}

    unknown_org = api(
        "PUT",
        f"/api/v1/directories/{created['id']}/group-mappings",
        json=[{"source_group": "Sales", "organization": "nowhere", "role": "member"}],
    )
    assert unknown_org.status_code == 422
    assert unknown_org.json()["error"]["field"] == "group_mappings[0].organization"

    not_found_route = api("GET", "/api/v1/nothing-here")
    assert not_found_route.status_code == 404
    assert not_found_route.json()["error"]["kind"] == "not_found"


def test_secrets_are_write_only(api: Any, snapshot: Any) -> None:
    secret = "s3cr3t-value-never-shown"
    document = {
        "name": "Vault",
        "provider": "secretfile",
        "connection": {"path": str(seed(snapshot)), "api_token": secret},
    }
    created = api("POST", "/api/v1/directories", json=document)
    assert created.status_code == 201, created.text
    assert created.json()["has_secrets"] is True
    assert "api_token" not in created.json()["connection"]
    directory = created.json()["id"]

    # Updating without the secret keeps it; the connection test still needs it to validate.
    updated = api(
        "PUT",
        f"/api/v1/directories/{directory}",
        json={
            "name": "Vault",
            "provider": "secretfile",
            "connection": {"path": str(snapshot.path)},
            "settings": {"frequency": "15m"},
        },
    )
    assert updated.status_code == 200, updated.text
    assert api("POST", f"/api/v1/directories/{directory}/test").json()["ok"] is True
    assert api("POST", f"/api/v1/directories/{directory}/sync", json={"dry_run": True}).status_code == 202

    seen = [
        api("GET", "/api/v1/directories").text,
        api("GET", f"/api/v1/directories/{directory}").text,
        api("GET", f"/api/v1/directories/{directory}/export").text,
        api("GET", f"/api/v1/directories/{directory}/settings").text,
        api("GET", "/api/v1/runs").text,
        updated.text,
    ]
    assert all(secret not in text for text in seen)


def test_replace_cannot_rename_or_change_provider(api: Any, snapshot: Any) -> None:
    created = _create(api, snapshot)
    renamed = api("PUT", f"/api/v1/directories/{created['id']}", json=directory_document(snapshot.path, name="Other"))
    assert renamed.status_code == 422
    assert renamed.json()["error"]["field"] == "name"
    replaced = api(
        "PUT", f"/api/v1/directories/{created['id']}", json={**directory_document(snapshot.path), "group_mappings": []}
    )
    assert replaced.status_code == 200
    assert replaced.json()["group_mappings"] == []


def test_settings_patch_keeps_the_rest(api: Any, snapshot: Any) -> None:
    created = _create(api, snapshot, frequency="15m")
    before = api("GET", f"/api/v1/directories/{created['id']}/settings").json()
    assert before["frequency"] == "15m"
    assert before["schedule_enabled"] is False
    after = api("PATCH", f"/api/v1/directories/{created['id']}/settings", json={"schedule_enabled": True})
    assert after.status_code == 200
    assert after.json() == {**before, "schedule_enabled": True}
    assert api("PATCH", f"/api/v1/directories/{created['id']}/settings", json={"bogus": 1}).status_code == 422


def test_safety_thresholds_per_kind_patch_one_at_a_time_and_bad_values_name_the_field(
    api: Any, snapshot: Any
) -> None:
    created = _create(api, snapshot, safety={"max_deactivations": 50, "max_deactivation_percent": 10})
    url = f"/api/v1/directories/{created['id']}/settings"
    assert api("GET", url).json()["safety"] == {
        "max_deactivations": 50,
        "max_deactivation_percent": 10,
        "max_group_deletions": 50,
        "max_group_deletion_percent": 20,
        "max_membership_removals": 500,
        "max_membership_removal_percent": 50,
    }
    patched = api("PATCH", url, json={"safety": {"max_group_deletions": 3, "max_membership_removal_percent": 25}})
    assert patched.status_code == 200, patched.text
    safety = patched.json()["safety"]
    assert (safety["max_group_deletions"], safety["max_membership_removal_percent"]) == (3, 25)
    assert (safety["max_deactivations"], safety["max_deactivation_percent"]) == (50, 10), "the others stay"
    for bad, field in (
        ({"max_group_deletions": -1}, "safety.max_group_deletions"),
        ({"max_membership_removal_percent": 101}, "safety.max_membership_removal_percent"),
        ({"max_group_deletion_percent": "lots"}, "safety.max_group_deletion_percent"),
        ({"max_membership_removals": True}, "safety.max_membership_removals"),
        ({"max_group_deletions": 1.5}, "safety.max_group_deletions"),
        ({"max_deletions": 3}, "safety.max_deletions"),
    ):
        refused = api("PATCH", url, json={"safety": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["field"] == field, refused.json()
    assert api("GET", url).json()["safety"] == safety, "a refused patch changes nothing"
    document = directory_document(seed(snapshot), name="Other", safety={"max_group_deletion_percent": -5})
    refused_document = api("POST", "/api/v1/directories", json=document)
    assert refused_document.status_code == 422
    assert refused_document.json()["error"]["field"] == "settings.safety.max_group_deletion_percent"


def test_the_api_schema_describes_every_safety_threshold(api: Any) -> None:
    schema = api("GET", "/openapi.json").json()["components"]["schemas"]
    safety = schema["Safety"]["properties"]
    assert set(safety) == {
        "max_deactivations",
        "max_deactivation_percent",
        "max_group_deletions",
        "max_group_deletion_percent",
        "max_membership_removals",
        "max_membership_removal_percent",
    }
    assert safety["max_membership_removal_percent"]["maximum"] == 100
    assert safety["max_group_deletions"]["minimum"] == 0
    assert schema["SyncSettings"]["properties"]["safety"]


def test_group_mappings(api: Any, snapshot: Any) -> None:
    created = _create(api, snapshot)
    url = f"/api/v1/directories/{created['id']}/group-mappings"
    mappings = [
        {"source_group": "Sales", "organization": "acme", "role": "viewer"},
        {"source_group": "Platform", "organization": "acme-eng", "role": "owner"},
    ]
    assert api("PUT", url, json=mappings).json() == mappings
    assert api("GET", url).json() == mappings
    # One group in two organizations is two mappings; re-applying or saving any part adds no copy.
    mappings.append({"source_group": "platform", "organization": "acme", "role": "member"})
    document = {**directory_document(snapshot.path), "group_mappings": mappings}
    directory = f"/api/v1/directories/{created['id']}"
    for _ in range(3):
        assert api("PUT", directory, json=document).json()["group_mappings"] == mappings
        assert api("PUT", url, json=mappings).json() == mappings
        assert api("PATCH", f"{directory}/settings", json={"frequency": "15m"}).status_code == 200
    assert api("GET", f"{directory}/export").json()["group_mappings"] == mappings


def test_one_group_mapped_twice_to_one_organization_is_refused_naming_both(api: Any, snapshot: Any) -> None:
    twice = [
        {"source_group": "Engineering", "organization": "acme", "role": "owner"},
        {"source_group": "engineering", "organization": "acme", "role": "viewer"},
    ]
    refused = api("POST", "/api/v1/directories", json={**directory_document(seed(snapshot)), "group_mappings": twice})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "group_mappings[1]"
    assert "group engineering is mapped to organization acme twice, as owner and as viewer" in error["message"]
    assert api("GET", "/api/v1/directories").json() == []

    created = _create(api, snapshot)
    url = f"/api/v1/directories/{created['id']}/group-mappings"
    assert api("PUT", url, json=twice).status_code == 422
    assert api("GET", url).json() == created["group_mappings"]


def test_a_mapping_that_names_a_field_the_provider_lacks_is_refused(api: Any) -> None:
    contoso = {
        "name": "Contoso",
        "provider": "entra",
        "connection": {"tenant_id": "contoso.onmicrosoft.com", "client_id": "app", "client_secret": "s3cret"},
        "settings": {"attribute_mapping": {"display_name": "{{ given_name }} {{ family_name }}"}},
    }
    refused = api("POST", "/api/v1/directories", json=contoso)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "settings.attribute_mapping.display_name"
    assert "Microsoft Entra ID users have no field given_name" in error["message"]
    assert error["hint"] == "did you mean givenName?"

    contoso["settings"] = {"attribute_mapping": {"display_name": "{{ givenName }} {{ surname }}"}}
    created = api("POST", "/api/v1/directories", json=contoso)
    assert created.status_code == 201, created.text
    url = f"/api/v1/directories/{created.json()['id']}"
    patched = api("PATCH", f"{url}/settings", json={"attribute_mapping": {"cost_center": "costCenter"}})
    assert patched.status_code == 422
    assert patched.json()["error"]["field"] == "settings.attribute_mapping.cost_center"
    preview = api("POST", f"{url}/mapping-preview", json={"attribute_mapping": {"department": "departmnt"}})
    assert preview.status_code == 422
    assert preview.json()["error"]["hint"] == "did you mean department?"
    assert api("GET", f"{url}/settings").json()["attribute_mapping"] == contoso["settings"]["attribute_mapping"]


def test_connection_test_and_source_groups(api: Any, snapshot: Any) -> None:
    created = _create(api, snapshot)
    ok = api("POST", f"/api/v1/directories/{created['id']}/test").json()
    assert ok == {
        "ok": True,
        "details": [f"5 users and 3 groups in {snapshot.path}"],
        "problems": [],
        "kind": None,
        "same_source": [],
    }
    second = api("POST", "/api/v1/directories", json=directory_document(snapshot.path, name="Acme twin")).json()
    twin = api("POST", f"/api/v1/directories/{second['id']}/test").json()
    assert twin["ok"] is True
    assert twin["same_source"] == [
        {"id": created["id"], "name": "Acme HR", "reason": f"it connects the same tenant (path {snapshot.path})"}
    ]
    groups = api("GET", f"/api/v1/directories/{created['id']}/source-groups").json()
    assert [g["name"] for g in groups] == ["Engineering", "Platform", "Sales"]
    assert groups[0]["id"] == "g-eng"

    snapshot.path.unlink()
    failed = api("POST", f"/api/v1/directories/{created['id']}/test")
    assert failed.status_code == 200
    assert failed.json()["ok"] is False
    assert failed.json()["kind"] == "unreachable"
    assert "does not exist" in failed.json()["problems"][0]
    unreadable = api("GET", f"/api/v1/directories/{created['id']}/source-groups")
    assert unreadable.status_code == 502
    assert unreadable.json()["error"]["kind"] == "unreachable"


def test_mapping_preview_before_and_after_first_sync(api: Any, store: Store, snapshot: Any) -> None:
    created = _create(api, snapshot)
    url = f"/api/v1/directories/{created['id']}/mapping-preview"
    body = {
        "attribute_mapping": {
            "city": "location.city",
            "shout": "{{ given_name | upper }}",
            "display_name": "{{ given_name }} ({{ department }})",
        },
        "limit": 2,
    }
    live = api("POST", url, json=body).json()
    assert live["note"] is None
    assert [s["external_id"] for s in live["samples"]] == ["u0", "u1"]
    assert live["samples"][0]["values"]["city"] == "Lisbon"
    assert live["samples"][0]["values"]["shout"] == "U0"
    assert live["samples"][1]["values"]["display_name"] == "U1 (Engineering)"
    assert live["effective"]["email"] == "email"

    _run_to_end(api, store, created["id"])
    mirrored = api("POST", url, json=body).json()
    assert mirrored["samples"] == live["samples"]

    broken = api("POST", url, json={"attribute_mapping": {"x": "{{ unclosed"}})
    assert broken.status_code == 422
    assert broken.json()["error"]["field"] == "settings.attribute_mapping.x"
    failing = api("POST", url, json={"attribute_mapping": {"x": "{{ 1 / 0 }}"}, "limit": 1}).json()
    assert "attribute x" in failing["samples"][0]["error"]


def _run_to_end(api: Any, store: Store, directory: int, **body: Any) -> dict[str, Any]:
    queued = api("POST", f"/api/v1/directories/{directory}/sync", json=body)
    assert queued.status_code == 202, queued.text
    runs.run_now(store, queued.json()["id"])
    return dict(api("GET", f"/api/v1/runs/{queued.json()['id']}").json())


def test_sync_now_queues_once(api: Any, store: Store, snapshot: Any) -> None:
    created = _create(api, snapshot)
    first = api("POST", f"/api/v1/directories/{created['id']}/sync")
    assert first.status_code == 202
    assert first.json()["status"] == "queued"
    assert first.json()["trigger"] == "api"
    again = api("POST", f"/api/v1/directories/{created['id']}/sync", json={"dry_run": True})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]

    runs.run_now(store, first.json()["id"])
    done = api("GET", f"/api/v1/runs/{first.json()['id']}").json()
    assert done["status"] == "succeeded"
    assert done["counts"]["users_created"] == 5
    assert done["counts"]["groups_processed"] == 3
    listed = api("GET", f"/api/v1/directories/{created['id']}/runs").json()
    assert [r["id"] for r in listed] == [first.json()["id"]]
    shown = api("GET", f"/api/v1/directories/{created['id']}").json()
    assert shown["users"] == 5
    assert shown["last_run"]["status"] == "succeeded"
    assert shown["last_applied_run"]["id"] == first.json()["id"]
    # A dry run after it is the last attempt; the last applied sync stays.
    dry = _run_to_end(api, store, created["id"], dry_run=True)
    shown = api("GET", f"/api/v1/directories/{created['id']}").json()
    assert shown["last_run"]["id"] == dry["id"] and shown["last_run"]["dry_run"] is True
    assert shown["last_applied_run"]["id"] == first.json()["id"]


def test_delete(api: Any, store: Store, snapshot: Any) -> None:
    created = _create(api, snapshot)
    _run_to_end(api, store, created["id"])
    assert api("DELETE", f"/api/v1/directories/{created['id']}").status_code == 204
    assert api("GET", f"/api/v1/directories/{created['id']}").status_code == 404
    users = api("GET", "/api/v1/users").json()
    assert len(users) == 5
    assert all(u["directory"] is None for u in users)


def test_delete_refused_while_a_run_is_queued(api: Any, snapshot: Any) -> None:
    created = _create(api, snapshot)
    api("POST", f"/api/v1/directories/{created['id']}/sync")
    refused = api("DELETE", f"/api/v1/directories/{created['id']}")
    assert refused.status_code == 422
    assert "queued or running" in refused.json()["error"]["message"]


def test_responses_are_json_documents(api: Any, snapshot: Any) -> None:
    created = _create(api, snapshot)
    response = api("GET", f"/api/v1/directories/{created['id']}")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    json.loads(response.text)


def test_the_push_setting_is_validated_and_opens_the_scim_endpoint(api: Any, store: Store, snapshot: Any) -> None:
    created = _create(api, snapshot)
    settings = f"/api/v1/directories/{created['id']}/settings"
    refused = api("PATCH", settings, json={"push": "sometimes"})
    assert refused.status_code == 422
    assert "push" in json.dumps(refused.json())
    document = {**directory_document(snapshot.path, name="Pushed"), "push": "sometimes"}
    refused_document = api("POST", "/api/v1/directories", json=document)
    assert refused_document.status_code == 422
    assert refused_document.json()["error"]["field"] == "settings.push"
    assert api("PATCH", settings, json={"push": True}).json()["push"] is True
    with store.transaction() as session:
        token = scim_tokens.issue_token(session, dirs.get_directory(session, created["id"])).token
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.client.get(f"/scim/v2/{created['id']}/Users", headers=bearer).status_code == 200
    api("PATCH", settings, json={"push": False})
    assert api.client.get(f"/scim/v2/{created['id']}/Users", headers=bearer).status_code == 401
