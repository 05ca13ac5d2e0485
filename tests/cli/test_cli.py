"""The `accessiq` command end to end, as an administrator's shell runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Snapshot


def document(tmp_path: Path, snapshot: Path, extra: str = "") -> Path:
    path = tmp_path / "corp.yaml"
    path.write_text(f"""\
name: Corp
provider: file
connection:
  path: {snapshot}
settings:
  default_organization: acme
  attribute_mapping: {{department: department}}
group_mappings:
  - {{source_group: Engineering, organization: acme-eng, role: admin}}
{extra}""")
    return path


def seed(snapshot: Snapshot) -> None:
    snapshot.user("ann", department="R&D")
    snapshot.user("bob", department="Sales")
    snapshot.group("g1", "Engineering", ["ann"])
    snapshot.write()


def test_an_administrators_session(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    seed(snapshot)
    cli("orgs", "create", "acme", "--name", "Acme")
    cli("orgs", "create", "acme-eng")
    applied = json.loads(cli("directories", "apply", str(document(tmp_path, snapshot.path)), "--json").stdout)
    assert applied["name"] == "Corp" and applied["settings"]["default_role"] == "member"

    run = json.loads(cli("sync", "Corp", "--json").stdout)
    assert run["status"] == "succeeded" and run["counts"]["users_created"] == 2
    assert set(run) >= {
        "id",
        "directory",
        "status",
        "mode",
        "dry_run",
        "trigger",
        "started_at",
        "finished_at",
        "counts",
        "errors",
    }

    people = {u["email"]: u for u in json.loads(cli("users", "list", "--json").stdout)}
    assert people["ann@example.com"]["groups"] == ["Engineering"]
    assert {m["organization"]: m["role"] for m in people["ann@example.com"]["memberships"]} == {
        "acme": "member",
        "acme-eng": "admin",
    }

    # Admin actions: a manual membership and a deactivation, both respected by the next sync.
    cli("orgs", "add-member", "acme", "bob@example.com", "--role", "owner")
    cli("users", "deactivate", "ann@example.com")
    snapshot.find("ann")["department"] = "Platform"
    snapshot.write()
    second = json.loads(cli("sync", "1", "--json").stdout)
    assert second["counts"]["users_updated"] == 1 and second["counts"]["users_reactivated"] == 0
    people = {u["email"]: u for u in json.loads(cli("users", "list", "--json").stdout)}
    assert people["ann@example.com"]["status"] == "deactivated"
    assert ("acme", "owner", "manual") in {
        (m["organization"], m["role"], m["origin"]) for m in people["bob@example.com"]["memberships"]
    }

    shown = cli("runs", "show", str(second["id"]), "--changes").stdout
    assert "department: 'R&D' -> 'Platform'" in shown
    assert "Corp" in cli("directories", "list").stdout
    runs_listed = json.loads(cli("runs", "list", "--directory", "Corp", "--json").stdout)
    assert [r["id"] for r in runs_listed] == [second["id"], run["id"]]
    # A dry run after it is the last run, not the last sync.
    dry = json.loads(cli("sync", "Corp", "--dry-run", "--json").stdout)
    described = cli("directories", "show", "Corp").stdout
    assert f"last sync: run {second['id']} at" in described and f"last run: {dry['id']}" in described, described
    assert "acme-eng" in cli("orgs", "list").stdout
    assert "Engineering" in cli("groups", "list").stdout
    assert "ok" in cli("directories", "test", "Corp").stdout
    assert "Engineering" in cli("directories", "groups", "Corp").stdout


def test_users_show_explains_each_membership(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    """ann is in Platform, which Engineering nests: the mapping of Engineering reaches her through it."""
    snapshot.user("ann")
    snapshot.user("bob")
    snapshot.group("g1", "Engineering", ["g2"])
    snapshot.group("g2", "Platform", ["ann"])
    snapshot.write()
    cli("orgs", "create", "acme")
    cli("orgs", "create", "acme-eng")
    cli("directories", "apply", str(document(tmp_path, snapshot.path)))
    cli("sync", "Corp")
    cli("orgs", "add-member", "acme", "bob@example.com", "--role", "owner")

    listed = cli("users", "list").stdout
    assert "acme:member, acme-eng:admin" in listed and "acme:owner" in listed
    assert "why a user holds a role: accessiq users show USER" in listed
    shown = cli("users", "show", "ann@example.com").stdout
    assert "acme-eng  effective role: admin" in shown
    assert (
        "admin    mapping Engineering → acme-eng (admin) of directory Corp, through Engineering ⊃ Platform ⊃ "
        "ann@example.com"
    ) in shown
    assert "acme  effective role: member\n  member   default organization of directory Corp" in shown
    bob = cli("users", "show", "bob@example.com").stdout
    assert "acme  effective role: owner\n  owner    granted by hand" in bob
    assert "  member   default organization of directory Corp" in bob

    data = json.loads(cli("users", "show", "ann@example.com", "--json").stdout)
    eng = next(m for m in data["memberships"] if m["organization"] == "acme-eng")
    assert eng["granted_by"]["kind"] == "group-mapping"
    assert eng["granted_by"]["mapping"]["source_group"] == "Engineering"
    assert [step["name"] for step in eng["granted_by"]["path"]] == ["Engineering", "Platform"]
    default = next(m for m in data["memberships"] if m["organization"] == "acme")
    assert (default["granted_by"]["kind"], default["granted_by"]["directory"]) == ("directory-default", "Corp")
    missing = cli("users", "show", "nobody@example.com", ok=False)
    assert missing.returncode != 0 and "no user 'nobody@example.com'" in missing.stderr


def test_activating_a_user_the_directory_disabled_warns(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    seed(snapshot)
    cli("orgs", "create", "acme")
    cli("orgs", "create", "acme-eng")
    path = document(tmp_path, snapshot.path)
    path.write_text(path.read_text().replace("settings:\n", "settings:\n  safety: {max_deactivation_percent: 100}\n"))
    cli("directories", "apply", str(path))
    cli("sync", "Corp")
    snapshot.find("ann")["active"] = False
    snapshot.write()
    cli("sync", "Corp")

    activated = cli("users", "activate", "ann@example.com")
    assert "ann@example.com is active" in activated.stdout
    assert activated.stderr.strip() == (
        "warning: ann@example.com is disabled in Corp, so the next sync of Corp will deactivate them again. "
        "To keep them active, enable them in Corp first, or set the deactivation setting of Corp to ignore."
    )
    data = json.loads(cli("users", "activate", "ann@example.com", "--json").stdout)
    assert data["status"] == "active" and data["warning"].startswith("ann@example.com is disabled in Corp")
    assert cli("users", "activate", "bob@example.com").stderr == ""


def test_export_reapplies_to_the_same_directory(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    seed(snapshot)
    cli("orgs", "create", "acme")
    cli("orgs", "create", "acme-eng")
    cli("directories", "apply", str(document(tmp_path, snapshot.path)))
    exported = cli("directories", "export", "Corp").stdout
    again = tmp_path / "exported.yaml"
    again.write_text(exported)
    assert "updated directory 1" in cli("directories", "apply", str(again)).stdout
    assert cli("directories", "export", "Corp").stdout == exported


def test_dry_run_then_approve_and_blocked_exit_codes(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    seed(snapshot)
    cli("orgs", "create", "acme")
    cli("orgs", "create", "acme-eng")
    cli("directories", "apply", str(document(tmp_path, snapshot.path)))
    preview = json.loads(cli("sync", "Corp", "--dry-run", "--json").stdout)
    assert preview["dry_run"] and preview["pending_approval"]
    assert json.loads(cli("users", "list", "--json").stdout) == []
    approved = json.loads(cli("runs", "approve", str(preview["id"]), "--json").stdout)
    assert approved["trigger"] == "approval" and approved["counts"]["users_created"] == 2

    snapshot.users = []
    snapshot.write()
    blocked = cli("sync", "Corp", ok=False)
    assert blocked.returncode == 1 and "blocked" in blocked.stdout
    assert "accessiq runs approve" in blocked.stdout
    rejected = json.loads(cli("runs", "reject", "3", "--json").stdout)
    assert rejected["resolution"] == "rejected"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed", "is not valid YAML or JSON at line 1"),
        ("name: X\nprovider: nope\n", "provider: unknown provider 'nope'; choose one of"),
        (
            "name: X\nprovider: file\nconnection: {path: x}\nsettings: {frequncy: 1h}\n",
            "settings.frequncy: unknown field (did you mean frequency?)",
        ),
        (
            "name: X\nprovider: file\nconnection: {pth: x}\n",
            "connection.pth: unknown field (did you mean path?)",
        ),
        (
            "name: X\nprovider: file\nconnection: {path: x}\nsettings: {attribute_mapping: {title: '{{ x'}}\n",
            "settings.attribute_mapping.title: template does not parse",
        ),
        (
            "name: X\nprovider: file\nconnection: {path: x}\nsettings: {default_role: boss}\n",
            "settings.default_role: role 'boss' does not exist",
        ),
        (
            "name: X\nprovider: file\nconnection: {path: x}\nsettings: {default_organization: nowhere}\n",
            "settings.default_organization: organization 'nowhere' does not exist",
        ),
        (
            "name: X\nprovider: file\nconnection: {path: x}\n"
            "group_mappings: [{source_group: a, organization: nowhere}]\n",
            "group_mappings[0].organization: organization 'nowhere' does not exist",
        ),
        (
            "name: X\nprovider: file\nconnection: {path: x}\nsettings: {frequency: often}\n",
            "settings.frequency: 'often' is neither an interval",
        ),
        (
            "name: X\nprovider: file\nconnection: {path: x}\nsettings: {deactivation: delete}\n",
            "settings.deactivation: Input should be 'deactivate' or 'ignore'",
        ),
    ],
)
def test_bad_documents_get_one_line_errors(cli: Any, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = cli("directories", "apply", str(path), ok=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("directories", "show", "nope"), "no directory 'nope'", 3),
        (("runs", "show", "99"), "no run '99'", 3),
        (("users", "deactivate", "ghost@example.com"), "no user 'ghost@example.com'", 3),
        (("orgs", "create", "Bad Slug"), "is not a slug", 2),
        (("users", "create", "--email", "not-an-email"), "is not a valid email address", 2),
        (("sync",), "Missing argument", 2),
        (("users", "delete", "ghost@example.com", "--yes"), "no user 'ghost@example.com'", 3),
    ],
)
def test_bad_arguments_get_clear_errors(cli: Any, args: tuple[str, ...], message: str, code: int) -> None:
    result = cli(*args, ok=False)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_a_first_sync(cli: Any) -> None:
    out = cli("demo").stdout
    assert "succeeded" in out and "39 created" in out
    assert "demo-engineering" in cli("users", "list").stdout


def test_directories_test_names_a_mapping_that_finds_no_group(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    seed(snapshot)
    cli("orgs", "create", "acme")
    cli("orgs", "create", "acme-eng")
    extra = "  - {source_group: Enginering, organization: acme, role: member}\n"
    cli("directories", "apply", str(document(tmp_path, snapshot.path, extra)))
    result = cli("directories", "test", "Corp", ok=False)
    assert result.returncode == 1
    assert "group mapping 'Enginering' -> acme (member): no group matches 'Enginering'" in result.stdout


def test_admin_unlock_lets_a_locked_out_administrator_sign_in_before_the_lockout_ends(cli: Any, tmp_path: Path) -> None:
    from accessiq.config import Settings
    from accessiq.services import accounts, sign_in
    from accessiq.store.database import open_store

    from ..conftest import TEST_KEY

    store = open_store(Settings(data_dir=tmp_path / "data", secret_key=TEST_KEY))
    limits = sign_in.Limits(per_account=3)
    with store.transaction() as session:
        accounts.create_administrator(session, "ann@example.com", "correct horse battery")
    for _ in range(3):
        with store.transaction() as session:
            sign_in.sign_in(session, "ann@example.com", "wrong", address="192.0.2.1", limits=limits)
    with pytest.raises(sign_in.TooManyAttemptsError), store.transaction() as session:
        sign_in.sign_in(session, "ann@example.com", "correct horse battery", address="192.0.2.1", limits=limits)

    assert "ann@example.com may sign in again" in cli("admin", "unlock", "ann@example.com").stdout
    assert "was not locked out" in cli("admin", "unlock", "ann@example.com").stdout
    unknown = cli("admin", "unlock", "nobody@example.com", ok=False)
    assert unknown.returncode != 0 and "no administrator 'nobody@example.com'" in unknown.stdout + unknown.stderr

    with store.transaction() as session:
        assert sign_in.sign_in(session, "ann@example.com", "correct horse battery", address="192.0.2.1", limits=limits)


def test_reapplying_a_document_changes_nothing(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    seed(snapshot)
    cli("orgs", "create", "acme")
    cli("orgs", "create", "acme-eng")
    extra = "  - {source_group: Engineering, organization: acme, role: viewer}\n"
    path = document(tmp_path, snapshot.path, extra)
    first = json.loads(cli("directories", "apply", str(path), "--json").stdout)
    for _ in range(2):
        again = json.loads(cli("directories", "apply", str(path), "--json").stdout)
        assert again["group_mappings"] == first["group_mappings"] == [
            {"source_group": "Engineering", "organization": "acme-eng", "role": "admin"},
            {"source_group": "Engineering", "organization": "acme", "role": "viewer"},
        ]


def test_one_group_mapped_twice_to_one_organization_is_refused(cli: Any, tmp_path: Path, snapshot: Snapshot) -> None:
    seed(snapshot)
    cli("orgs", "create", "acme")
    cli("orgs", "create", "acme-eng")
    extra = "  - {source_group: Engineering, organization: acme-eng, role: viewer}\n"
    result = cli("directories", "apply", str(document(tmp_path, snapshot.path, extra)), ok=False)
    assert result.returncode == 2
    assert (
        "group_mappings[1]: group Engineering is mapped to organization acme-eng twice, as admin and as viewer"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert "Corp" not in cli("directories", "list").stdout


def test_a_mapping_field_the_provider_lacks_is_refused_with_a_did_you_mean(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "okta.yaml"
    path.write_text("""\
name: Acme Okta
provider: okta
connection: {org_url: "https://acme.okta.com", api_token: inline-token}
settings:
  attribute_mapping: {department: profile.department, given_name: firstName}
""")
    result = cli("directories", "apply", str(path), ok=False)
    assert result.returncode == 2
    assert (
        "settings.attribute_mapping.given_name: Okta users have no field firstName (did you mean profile.firstName?)"
        in result.stderr
    )
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    path.write_text(path.read_text().replace("given_name: firstName", "given_name: profile.firstName"))
    assert "created directory 1 Acme Okta" in cli("directories", "apply", str(path)).stdout
